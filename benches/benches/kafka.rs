//! The runtime on a Kafka-protocol broker against a hand-written librdkafka loop, with the
//! standard workloads of docs/BENCHMARKS.md:
//!
//! - W0 read: every input record through the framework's Kafka consumer (the ceiling);
//! - hand-written W1: an `rdkafka` consume-transform-produce loop (group consumer, parse
//!   JSON, drop bots, project, serialize, produce to the input record's partition, commit
//!   every second), what a user would write without the framework;
//! - W1 stateless and W2 count through `KafkaStreams` (one stream thread, commit every
//!   second, cache 10 MiB), timed from `start()` until every record is processed and
//!   `close()` has committed and flushed the output;
//! - W2 under `exactly_once_v2` (100 ms commits, each a transaction) where the broker
//!   commits transactions (`KAFKA_BENCH_BOOTSTRAP`, e.g. `streams serve`; not tansu).
//!
//! The broker is tansu with its memory engine (sqlite is the bottleneck at about 30k
//! records/s), started on 127.0.0.1 by the benchmark: `$STREAMS_TANSU`, else
//! `~/.cache/rust-streams/tansu/bin/tansu` (`.ci/run` installs it). `KAFKA_BENCH_BOOTSTRAP`
//! names another (empty) broker instead. `KAFKA_RECORDS` (default 500,000) and `KAFKA_RUNS`
//! (default 3) size the runs. Run with `cargo bench -p streams-benches --bench kafka`.

#![allow(missing_docs)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use streams_benches::{
    BoxResult, INPUT, PARTITIONS, PageTs, PageView, env_usize, loadavg, page_views, rate, stats,
    w1, w2,
};
use streams_core::client::kafka::KafkaClients;
use streams_core::client::{
    ClientSupplier, NewTopic, NoRebalanceListener, OutgoingRecord, TopicPartition,
};
use streams_core::config::ProcessingGuarantee;
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, StreamsState};

const TIMEOUT: Duration = Duration::from_secs(600);

/// A tansu broker (memory engine) under a shell that stops it when our end of its stdin
/// closes, so that it never outlives the benchmark.
struct Tansu {
    bootstrap: String,
    _guard: std::process::ChildStdin,
}

fn tansu_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("STREAMS_TANSU") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("rust-streams/tansu/bin/tansu")).filter(|p| p.is_file())
}

fn start_tansu() -> BoxResult<Tansu> {
    let binary = tansu_binary().ok_or(
        "no tansu: set STREAMS_TANSU, run .ci/run, or name a broker with KAFKA_BENCH_BOOTSTRAP",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" broker --listener-url "$1" --advertised-listener-url "$1" --storage-engine memory://tansu/ >/dev/null 2>&1 & b=$!; cat >/dev/null; kill $b; wait $b"#)
        .arg(binary)
        .arg(&url)
        .stdin(Stdio::piped())
        .spawn()?;
    let guard = child.stdin.take().ok_or("no stdin")?;
    std::mem::forget(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("tansu did not listen within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Tansu {
        bootstrap: format!("127.0.0.1:{port}"),
        _guard: guard,
    })
}

/// The app's settings; `purge`: delete consumed repartition records after each commit
/// (tansu's DeleteRecords breaks its connection, on the memory engine too).
fn config(bootstrap: &str, app: &str, state: &std::path::Path, purge: bool) -> StreamsConfig {
    StreamsConfig::new(app)
        .with_repartition_purge(purge)
        .with_bootstrap_servers([bootstrap])
        .with_state_dir(state)
        .with_num_stream_threads(1)
        .with_cache_max_bytes(10 << 20)
        .with_commit_interval(Duration::from_secs(1))
        .with_default_api_timeout(Duration::from_secs(30))
}

/// Reads `topic` (all partitions, from the start) until `done` says the results are
/// complete; returns when they are. `done` sees each record's key and value.
fn read_until(
    clients: &KafkaClients,
    topic: &str,
    mut done: impl FnMut(Option<Vec<u8>>, Option<Vec<u8>>) -> bool,
) -> BoxResult<()> {
    let mut c = clients.restore_consumer("bench-reader")?;
    let tps: Vec<(TopicPartition, i64)> = (0..PARTITIONS)
        .map(|p| (TopicPartition::new(topic, p), 0))
        .collect();
    c.assign(&tps)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut read = 0u64;
    let mut last_report = Instant::now();
    loop {
        if Instant::now() > deadline {
            return Err(format!("{topic}: results incomplete after {TIMEOUT:?}").into());
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("  {topic}: {read} records read so far");
            last_report = Instant::now();
        }
        for r in c.poll(Duration::from_millis(20), &mut NoRebalanceListener)? {
            read += 1;
            if done(r.record.key, r.record.value) {
                return Ok(());
            }
        }
    }
}

/// W0: every input record through the framework's consumer.
fn read_all(clients: &KafkaClients, n: usize) -> BoxResult<f64> {
    let t0 = Instant::now();
    let mut seen = 0;
    read_until(clients, INPUT, |_, _| {
        seen += 1;
        seen == n
    })?;
    Ok(t0.elapsed().as_secs_f64())
}

/// The hand-written W1: consume, transform, produce, commit every second.
fn hand_written_w1(bootstrap: &str, group: &str, output: &str, n: usize) -> BoxResult<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range")
        .create()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()?;
    let t0 = Instant::now();
    consumer.subscribe(&[INPUT])?;
    let mut consumed = 0;
    let mut last_commit = Instant::now();
    while consumed < n {
        if t0.elapsed() > TIMEOUT {
            return Err("the hand-written loop did not finish".into());
        }
        let Some(msg) = consumer.poll(Duration::from_millis(20)) else {
            producer.poll(Duration::ZERO);
            continue;
        };
        let msg = msg?;
        consumed += 1;
        let Some(payload) = msg.payload() else {
            continue;
        };
        let view: PageView = serde_json::from_slice(payload)?;
        if view.referrer != "bot" {
            let out = serde_json::to_vec(&PageTs {
                page: view.page,
                ts: view.ts,
            })?;
            let key = msg.key().unwrap_or_default();
            let mut record = BaseRecord::to(output)
                .partition(msg.partition())
                .key(key)
                .payload(&out);
            if let Some(ts) = msg.timestamp().to_millis() {
                record = record.timestamp(ts);
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                if let Err((e, r)) = producer.send(r) {
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
                        producer.poll(Duration::from_millis(5));
                        record = Some(r);
                    } else {
                        return Err(e.into());
                    }
                }
            }
        }
        producer.poll(Duration::ZERO);
        if last_commit.elapsed() >= Duration::from_secs(1) {
            producer.flush(Duration::from_secs(30))?;
            consumer.commit_consumer_state(CommitMode::Async)?;
            last_commit = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(60))?;
    consumer.commit_consumer_state(CommitMode::Sync)?;
    Ok(t0.elapsed().as_secs_f64())
}

/// The framework: `topology` from start() until its stream thread has processed `target`
/// records (input and repartitioned) and `close()` has committed and flushed the output.
/// (Reading the output back to find the end measures the broker instead: tansu answers a
/// fetch with one batch per partition, and the app's batches are small.)
fn framework(
    bootstrap: &str,
    app: &str,
    topology: Topology,
    target: u64,
    purge: bool,
    eos: bool,
) -> BoxResult<f64> {
    let dir = tempfile::tempdir()?;
    let mut config = config(bootstrap, app, dir.path(), purge);
    if eos {
        // Kafka Streams' exactly-once setup: 100 ms commits, each a transaction.
        config = config
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
            .with_commit_interval(Duration::from_millis(100));
    }
    let clients = KafkaClients::new(&config)?;
    let mut streams = KafkaStreams::with_clients(topology, config, Arc::new(clients))?;
    let t0 = Instant::now();
    streams.start()?;
    while streams.metrics().total().processed < target {
        if matches!(
            streams.state(),
            StreamsState::Error | StreamsState::NotRunning
        ) {
            let outcome = streams.close();
            return Err(format!("{app}: the app stopped before the end: {outcome:?}").into());
        }
        if t0.elapsed() > TIMEOUT {
            return Err(format!("{app}: not done after {TIMEOUT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    streams.close()?;
    Ok(t0.elapsed().as_secs_f64())
}

fn main() -> BoxResult<()> {
    let n = env_usize("KAFKA_RECORDS", 500_000)?;
    let runs = env_usize("KAFKA_RUNS", 3)?.max(1);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let (bootstrap, tansu, broker) = match std::env::var("KAFKA_BENCH_BOOTSTRAP") {
        Ok(b) if !b.is_empty() => (b.clone(), None, format!("the broker at {b}")),
        _ => {
            let t = start_tansu()?;
            (
                t.bootstrap.clone(),
                Some(t),
                "tansu 0.6 (memory engine)".into(),
            )
        }
    };
    let purge = tansu.is_none();
    eprintln!(
        "kafka: {n} records, {runs} runs, {cores} cores, {broker}, load {}",
        loadavg()
    );
    let setup = StreamsConfig::new("bench-setup")
        .with_bootstrap_servers([bootstrap.as_str()])
        .with_default_api_timeout(Duration::from_secs(30));
    let clients = KafkaClients::new(&setup)?;
    let admin = clients.admin()?;
    admin.create_topic(&NewTopic::new(INPUT, PARTITIONS))?;

    // Pre-fill the input.
    let t0 = Instant::now();
    let serde = PageView::default_serde();
    let mut producer = clients.producer("bench-fill")?;
    for view in page_views(42).take(n) {
        let key = view.user_id.clone().into_bytes();
        producer.send(OutgoingRecord {
            partition: TopicPartition::new(INPUT, partition_for_key(&key, PARTITIONS)),
            timestamp: view.ts,
            key: Some(key),
            value: Some(serde.serialize(&view)?),
            headers: Vec::new(),
        })?;
    }
    producer.flush(Duration::from_secs(120))?;
    eprintln!("pre-filled {n} page views in {:.1?}", t0.elapsed());

    let (mut w0, mut hand, mut fw1, mut fw2) = (vec![], vec![], vec![], vec![]);
    let mut fw2eos = Vec::new();
    for run in 0..runs {
        let secs = read_all(&clients, n)?;
        w0.push(n as f64 / secs);
        eprintln!("run {run}: W0 {}/s", rate(n as f64 / secs));

        let out = format!("hand-{run}-out");
        admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
        let secs = hand_written_w1(&bootstrap, &format!("hand-{run}"), &out, n)?;
        hand.push(n as f64 / secs);
        eprintln!("run {run}: hand-written W1 {}/s", rate(n as f64 / secs));

        let app = format!("kw1-{run}");
        let out = format!("{app}-out");
        admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
        let secs = framework(&bootstrap, &app, w1(&out)?, n as u64, purge, false)?;
        fw1.push(n as f64 / secs);
        eprintln!("run {run}: W1 {}/s", rate(n as f64 / secs));

        let app = format!("kw2-{run}");
        let out = format!("{app}-out");
        admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
        // Every input record, then each again from the repartition topic.
        let secs = framework(&bootstrap, &app, w2(&out)?, 2 * n as u64, purge, false)?;
        fw2.push(n as f64 / secs);
        eprintln!(
            "run {run}: W2 {}/s ({:.2} of hand-written W1 for W1), load {}",
            rate(n as f64 / secs),
            fw1[run] / hand[run],
            loadavg()
        );

        // W2 under exactly_once_v2, where the broker commits transactions (not tansu 0.6:
        // no EndTxn).
        if tansu.is_none() {
            let app = format!("kw2eos-{run}");
            let out = format!("{app}-out");
            admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
            let secs = framework(&bootstrap, &app, w2(&out)?, 2 * n as u64, purge, true)?;
            fw2eos.push(n as f64 / secs);
            eprintln!(
                "run {run}: W2 exactly_once_v2 {}/s ({:.2} of at_least_once W2), load {}",
                rate(n as f64 / secs),
                fw2eos[run] / fw2[run],
                loadavg()
            );
        }
    }

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\n{n} records of ~100 bytes, 4 partitions, {broker}, {runs} runs, {cores} cores; records/s, median (min-max)\n"
    )?;
    writeln!(out, "| workload | median | min | max | ratio to W0 |")?;
    writeln!(out, "|---|---|---|---|---|")?;
    let (w0m, _, _) = stats(&w0);
    for (name, rates) in [
        ("W0 read (framework consumer)", &w0),
        ("W1 hand-written rdkafka loop", &hand),
        ("W1 stateless (framework)", &fw1),
        ("W2 count (framework)", &fw2),
        ("W2 count, exactly_once_v2 (framework)", &fw2eos),
    ] {
        if rates.is_empty() {
            continue;
        }
        let (median, min, max) = stats(rates);
        writeln!(
            out,
            "| {name} | {} | {} | {} | {:.2} |",
            rate(median),
            rate(min),
            rate(max),
            median / w0m
        )?;
    }
    let ratios: Vec<f64> = fw1.iter().zip(&hand).map(|(f, h)| f / h).collect();
    let (median, min, max) = stats(&ratios);
    writeln!(
        out,
        "\nW1 framework / hand-written, per run: median {median:.2} (min {min:.2}, max {max:.2}); goal >= 0.8"
    )?;
    Ok(())
}
