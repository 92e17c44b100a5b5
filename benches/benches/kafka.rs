//! The runtime on a Kafka-protocol broker against a hand-written librdkafka loop, with the
//! standard workloads of docs/BENCHMARKS.md:
//!
//! - W0 read: every input record through the framework's Kafka consumer (the ceiling), and
//!   `w0-plain` through a plain librdkafka consumer (what the framework's consumer wraps);
//! - hand-written W1: an `rdkafka` consume-transform-produce loop (group consumer, parse
//!   JSON, drop bots, project, serialize, produce to the input record's partition, commit
//!   every second), what a user would write without the framework;
//! - W1 stateless, W2 count and W3 windowed count through `KafkaStreams` (one stream thread,
//!   commit every second, cache 10 MiB), timed from `start()` until every record is
//!   processed and `close()` has committed and flushed the output;
//! - W2 under `exactly_once_v2` (100 ms commits, each a transaction) where the broker
//!   commits transactions (`KAFKA_BENCH_BOOTSTRAP`, e.g. `streams serve`; not tansu).
//!
//! The broker is tansu with its memory engine (sqlite is the bottleneck at about 30k
//! records/s), started on 127.0.0.1 by the benchmark: `$STREAMS_TANSU`, else
//! `~/.cache/rust-streams/tansu/bin/tansu` (`.ci/run` installs it). `KAFKA_BENCH_BOOTSTRAP`
//! names another (empty) broker instead. `KAFKA_RECORDS` (default 500,000) and `KAFKA_RUNS`
//! (default 3) size the runs. Run with `cargo bench -p streams-benches --bench kafka`.
//!
//! Settings for a driver such as `benches/peers/run.sh`, which runs the framework and a peer
//! framework one after the other on one broker and one input:
//!
//! - `KAFKA_WORKLOADS`: the workloads to run, of `w0`, `w0-plain`, `hand`, `w1`, `w2`, `w3`, `w2-eos`
//!   (default: all; `w2-eos` only where the broker commits transactions);
//! - `KAFKA_BENCH_TANSU=1`: the broker of `KAFKA_BENCH_BOOTSTRAP` is tansu (repartition
//!   purge off, no `w2-eos`);
//! - `KAFKA_LOAD_ONLY=1`: create and fill the input, print `w1_expected <n>` (the records
//!   W1 writes) and exit;
//! - `KAFKA_INPUT_LOADED=1`: the input holds exactly the `KAFKA_RECORDS` records already;
//! - `KAFKA_FETCH_WAIT_MS`: every consumer's `fetch.wait.max.ms` (default librdkafka's,
//!   500 ms);
//! - `KAFKA_APP_PREFIX` (default `k`): the prefix of application ids and output topics, so
//!   that invocations on one broker never share a consumer group;
//! - `KAFKA_RESULTS`: a file to which each measured run appends a line
//!   `<workload> <records/s> <seconds>`.

#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use streams_benches::{
    BoxResult, INPUT, PARTITIONS, PageTs, PageView, env_usize, loadavg, page_views, rate, stats,
    w1, w2, w3,
};
use streams_core::client::kafka::KafkaClients;
use streams_core::client::{
    ClientSupplier, NewTopic, NoRebalanceListener, OutgoingRecord, TopicPartition,
};
use streams_core::config::{ClientPrefix, ProcessingGuarantee};
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

/// What every client of a run shares: the broker and the settings that follow from it.
struct Bench {
    bootstrap: String,
    /// Delete consumed repartition records after each commit (tansu's DeleteRecords breaks
    /// its connection, on the memory engine too).
    purge: bool,
    /// Every consumer's `fetch.wait.max.ms`, when set.
    fetch_wait_ms: Option<String>,
}

impl Bench {
    /// The app's settings.
    fn config(&self, app: &str, state: &Path) -> StreamsConfig {
        self.with_fetch_wait(
            StreamsConfig::new(app)
                .with_repartition_purge(self.purge)
                .with_bootstrap_servers([self.bootstrap.as_str()])
                .with_state_dir(state)
                .with_num_stream_threads(1)
                .with_cache_max_bytes(10 << 20)
                .with_commit_interval(Duration::from_secs(1))
                .with_default_api_timeout(Duration::from_secs(30)),
        )
    }

    /// `config` with the bench's `fetch.wait.max.ms` for every consumer.
    fn with_fetch_wait(&self, config: StreamsConfig) -> StreamsConfig {
        match &self.fetch_wait_ms {
            Some(ms) => {
                config.with_client_property(ClientPrefix::Consumer, "fetch.wait.max.ms", ms)
            }
            None => config,
        }
    }
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

/// W0 with a plain librdkafka consumer, the client the framework's consumer wraps: the
/// input's partitions assigned from the start, the same broker and `fetch.wait.max.ms`,
/// every payload looked at. Timed like [`read_all`], from creating the consumer.
fn read_plain(bench: &Bench, n: usize) -> BoxResult<f64> {
    let t0 = Instant::now();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bench.bootstrap)
        .set("group.id", "bench-plain-reader")
        .set("enable.auto.commit", "false");
    if let Some(ms) = &bench.fetch_wait_ms {
        config.set("fetch.wait.max.ms", ms);
    }
    let consumer: BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(INPUT, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + TIMEOUT;
    let (mut seen, mut bytes) = (0, 0);
    while seen < n {
        if Instant::now() > deadline {
            return Err(format!("plain W0: {seen} of {n} records after {TIMEOUT:?}").into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                seen += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    if bytes == 0 {
        return Err("plain W0: every payload was empty".into());
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// The hand-written W1: consume, transform, produce, commit every second.
fn hand_written_w1(bench: &Bench, group: &str, output: &str, n: usize) -> BoxResult<f64> {
    let mut consumer_config = ClientConfig::new();
    consumer_config
        .set("bootstrap.servers", &bench.bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range");
    if let Some(ms) = &bench.fetch_wait_ms {
        consumer_config.set("fetch.wait.max.ms", ms);
    }
    let consumer: BaseConsumer = consumer_config.create()?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bench.bootstrap)
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
    bench: &Bench,
    app: &str,
    topology: Topology,
    target: u64,
    eos: bool,
) -> BoxResult<f64> {
    let dir = tempfile::tempdir()?;
    let mut config = bench.config(app, dir.path());
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

/// Whether the environment variable `name` is set to something other than empty or `0`.
fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Writes the per-run ratios `a[i] / b[i]` (median, min, max) against the goal, 0.8.
fn ratio_line(out: &mut impl Write, what: &str, a: &[f64], b: &[f64]) -> BoxResult<()> {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    if !ratios.is_empty() {
        let (median, min, max) = stats(&ratios);
        writeln!(
            out,
            "\n{what}, per run: median {median:.2} (min {min:.2}, max {max:.2}); goal >= 0.8"
        )?;
    }
    Ok(())
}

/// The workloads this bench knows, in the order it runs them.
const WORKLOADS: [&str; 7] = ["w0", "w0-plain", "hand", "w1", "w2", "w3", "w2-eos"];

/// The workloads of `KAFKA_WORKLOADS` (default: all).
fn workloads() -> BoxResult<BTreeSet<String>> {
    let list = std::env::var("KAFKA_WORKLOADS").unwrap_or_default();
    if list.trim().is_empty() {
        return Ok(WORKLOADS.iter().map(|w| w.to_string()).collect());
    }
    let mut set = BTreeSet::new();
    for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if !WORKLOADS.contains(&w) {
            return Err(format!(
                "KAFKA_WORKLOADS: unknown workload `{w}` (known: {})",
                WORKLOADS.join(", ")
            )
            .into());
        }
        set.insert(w.to_string());
    }
    Ok(set)
}

/// Appends one measured run to the `KAFKA_RESULTS` file, when set.
fn record_result(workload: &str, n: usize, secs: f64) -> BoxResult<()> {
    if let Some(path) = std::env::var_os("KAFKA_RESULTS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{workload} {:.1} {secs:.3}", n as f64 / secs)?;
    }
    Ok(())
}

fn main() -> BoxResult<()> {
    let n = env_usize("KAFKA_RECORDS", 500_000)?;
    let runs = env_usize("KAFKA_RUNS", 3)?.max(1);
    let want = workloads()?;
    let prefix = std::env::var("KAFKA_APP_PREFIX").unwrap_or_else(|_| "k".into());
    let fetch_wait_ms = match std::env::var("KAFKA_FETCH_WAIT_MS") {
        Ok(v) if !v.trim().is_empty() => {
            let ms: u32 = v
                .trim()
                .parse()
                .map_err(|e| format!("KAFKA_FETCH_WAIT_MS `{v}`: {e}"))?;
            Some(ms.to_string())
        }
        _ => None,
    };
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let (bootstrap, tansu, broker, on_tansu) = match std::env::var("KAFKA_BENCH_BOOTSTRAP") {
        Ok(b) if !b.is_empty() => {
            let on_tansu = env_flag("KAFKA_BENCH_TANSU");
            let broker = if on_tansu {
                format!("tansu at {b}")
            } else {
                format!("the broker at {b}")
            };
            (b, None, broker, on_tansu)
        }
        _ => {
            let t = start_tansu()?;
            (
                t.bootstrap.clone(),
                Some(t),
                "tansu 0.6 (memory engine)".into(),
                true,
            )
        }
    };
    let bench = Bench {
        bootstrap,
        purge: !on_tansu,
        fetch_wait_ms,
    };
    eprintln!(
        "kafka: {n} records, {runs} runs, {cores} cores, {broker}, fetch.wait.max.ms {}, load {}",
        bench.fetch_wait_ms.as_deref().unwrap_or("default"),
        loadavg()
    );
    let setup = bench.with_fetch_wait(
        StreamsConfig::new("bench-setup")
            .with_bootstrap_servers([bench.bootstrap.as_str()])
            .with_default_api_timeout(Duration::from_secs(30)),
    );
    let clients = KafkaClients::new(&setup)?;
    let admin = clients.admin()?;

    // With KAFKA_INPUT_LOADED the driver has loaded exactly the KAFKA_RECORDS records (not
    // checked here: tansu 0.6's ListOffsets under-reports the high watermarks).
    if !env_flag("KAFKA_INPUT_LOADED") {
        // Pre-fill the input.
        // Kept forever (the records' timestamps are in 2023): `retention.ms` given
        // explicitly, so that tansu, which describes only the settings a topic was created
        // with, answers it (Quix Streams derives its internal topics' settings from it).
        admin.create_topic(&NewTopic {
            retention_ms: Some(-1),
            ..NewTopic::new(INPUT, PARTITIONS)
        })?;
        let t0 = Instant::now();
        let serde = PageView::default_serde();
        let mut producer = clients.producer("bench-fill")?;
        // The records W1 writes: those not from bots.
        let mut non_bot = 0;
        for view in page_views(42).take(n) {
            non_bot += usize::from(view.referrer != "bot");
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
        if env_flag("KAFKA_LOAD_ONLY") {
            println!("w1_expected {non_bot}");
            return Ok(());
        }
    }

    let mut w0plain = Vec::new();
    let (mut w0, mut hand, mut fw1, mut fw2, mut fw3) = (vec![], vec![], vec![], vec![], vec![]);
    let mut fw2eos = Vec::new();
    for run in 0..runs {
        if want.contains("w0") {
            let secs = read_all(&clients, n)?;
            w0.push(n as f64 / secs);
            record_result("w0", n, secs)?;
            eprintln!("run {run}: W0 {}/s", rate(n as f64 / secs));
        }

        if want.contains("w0-plain") {
            let secs = read_plain(&bench, n)?;
            w0plain.push(n as f64 / secs);
            record_result("w0-plain", n, secs)?;
            eprintln!("run {run}: W0 plain rdkafka {}/s", rate(n as f64 / secs));
        }

        if want.contains("hand") {
            let out = format!("{prefix}hand-{run}-out");
            admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
            let secs = hand_written_w1(&bench, &format!("{prefix}hand-{run}"), &out, n)?;
            hand.push(n as f64 / secs);
            record_result("hand", n, secs)?;
            eprintln!("run {run}: hand-written W1 {}/s", rate(n as f64 / secs));
        }

        if want.contains("w1") {
            let app = format!("{prefix}w1-{run}");
            let out = format!("{app}-out");
            admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
            let secs = framework(&bench, &app, w1(&out)?, n as u64, false)?;
            fw1.push(n as f64 / secs);
            record_result("w1", n, secs)?;
            eprintln!("run {run}: W1 {}/s", rate(n as f64 / secs));
        }

        if want.contains("w2") {
            let app = format!("{prefix}w2-{run}");
            let out = format!("{app}-out");
            admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
            // Every input record, then each again from the repartition topic.
            let secs = framework(&bench, &app, w2(&out)?, 2 * n as u64, false)?;
            fw2.push(n as f64 / secs);
            record_result("w2", n, secs)?;
            eprintln!(
                "run {run}: W2 {}/s, load {}",
                rate(n as f64 / secs),
                loadavg()
            );
        }

        if want.contains("w3") {
            let app = format!("{prefix}w3-{run}");
            let out = format!("{app}-out");
            admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
            let secs = framework(&bench, &app, w3(&out)?, n as u64, false)?;
            fw3.push(n as f64 / secs);
            record_result("w3", n, secs)?;
            eprintln!(
                "run {run}: W3 {}/s, load {}",
                rate(n as f64 / secs),
                loadavg()
            );
        }

        // W2 under exactly_once_v2, where the broker commits transactions (not tansu 0.6:
        // no EndTxn).
        if want.contains("w2-eos") && !on_tansu {
            let app = format!("{prefix}w2eos-{run}");
            let out = format!("{app}-out");
            admin.create_topic(&NewTopic::new(&out, PARTITIONS))?;
            let secs = framework(&bench, &app, w2(&out)?, 2 * n as u64, true)?;
            fw2eos.push(n as f64 / secs);
            record_result("w2-eos", n, secs)?;
            eprintln!(
                "run {run}: W2 exactly_once_v2 {}/s, load {}",
                rate(n as f64 / secs),
                loadavg()
            );
        }
    }
    drop(tansu);

    let mut out = std::io::stdout().lock();
    let fetch = bench
        .fetch_wait_ms
        .as_deref()
        .map_or(String::new(), |ms| format!(", fetch.wait.max.ms {ms}"));
    writeln!(
        out,
        "\n{n} records of ~100 bytes, 4 partitions, {broker}{fetch}, {runs} runs, {cores} cores; records/s, median (min-max)\n"
    )?;
    writeln!(out, "| workload | median | min | max | ratio to W0 |")?;
    writeln!(out, "|---|---|---|---|---|")?;
    let w0m = (!w0.is_empty()).then(|| stats(&w0).0);
    for (name, rates) in [
        ("W0 read (framework consumer)", &w0),
        ("W0 read (plain rdkafka consumer)", &w0plain),
        ("W1 hand-written rdkafka loop", &hand),
        ("W1 stateless (framework)", &fw1),
        ("W2 count (framework)", &fw2),
        ("W3 windowed count (framework)", &fw3),
        ("W2 count, exactly_once_v2 (framework)", &fw2eos),
    ] {
        if rates.is_empty() {
            continue;
        }
        let (median, min, max) = stats(rates);
        let ratio = w0m.map_or("-".to_string(), |w0m| format!("{:.2}", median / w0m));
        writeln!(
            out,
            "| {name} | {} | {} | {} | {ratio} |",
            rate(median),
            rate(min),
            rate(max),
        )?;
    }
    ratio_line(
        &mut out,
        "W0 framework consumer / plain rdkafka consumer",
        &w0,
        &w0plain,
    )?;
    ratio_line(&mut out, "W1 framework / hand-written", &fw1, &hand)?;
    Ok(())
}
