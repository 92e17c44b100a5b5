//! The activity-tracking app: page views and clicks in real time, with interactive queries,
//! an HTTP JSON API and a live dashboard (docs/TUTORIAL.md walks through it).
//!
//! By default it runs on the embedded log engine in `--data-dir`: the generator writes the
//! reference data (user profiles into `users`, the page catalogue into `pages`) before the
//! app starts, then a generator thread writes seeded, realistic page views and clicks into
//! `page_views` and `clicks` at `--rate` events per second (event time follows the wall
//! clock) with the occasional profile update, the app processes them, and the dashboard is
//! served at `http://127.0.0.1:8080/`. A one-line status (events/s, lag,
//! windows closed, records dropped as late or skipped) is refreshed every second on a
//! terminal (printed every 5 s otherwise); Ctrl-C (or SIGTERM) stops it cleanly.
//!
//! With `--start-time MS --events N` the input is deterministic: event time starts at `MS`
//! instead of following the wall clock and the events are written as fast as possible, so
//! two runs with the same seed write the same input (with `--exit-when-done`, a batch run
//! whose results can be checked exactly: `examples/tests/activity_deterministic.rs`).
//! `--speedup X` writes the same events paced instead, event time running X times as fast
//! as the wall clock, and `--wait-for-instances N` holds them back until N instances run the
//! app, so that a group of instances processes them as they come rather than as a backlog
//! (`examples/tests/kafka_deterministic.rs`).
//!
//! With `--bootstrap-servers host:port` it runs on Kafka; instances started with the same
//! application id (and their own `--port` and `--data-dir`) form a consumer group, split the
//! partitions, and each one's API answers for all keys. Run `activity --help` for the flags.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, Parser};

use streams_core::client::embedded::EmbeddedClients;
use streams_core::client::{Admin, ClientSupplier, Consumer, Producer, TopicPartition};
use streams_core::config::StreamsConfig;
use streams_core::query::HostInfo;
use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, shutdown_signal};
use streams_core::topology::NodeType;
use streams_examples::activity::generator::{
    self, ActivityGenerator, GeneratorConfig, RateLimiter,
};
use streams_examples::activity::web::{self, Stats, WebState, now_ms};
use streams_examples::activity::{
    self, ActivityConfig, CLICKS_TOPIC, InputRecord, PAGE_VIEW_COUNTS_FINAL_TOPIC, PAGE_VIEWS_TOPIC,
};

/// mimalloc: glibc's malloc cost about a third of a stream thread's time (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line (`activity --help`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "activity",
    about = "activity: real-time user-activity tracking over page_views and clicks, joined with \
             the users table and the pages catalogue",
    after_help = "The log goes to stderr, filtered by RUST_LOG (default: warn)."
)]
struct Args {
    /// HTTP port of the API and dashboard (0 picks one)
    #[arg(long, value_name = "P", default_value_t = 8080)]
    port: u16,
    /// Address to listen on and to advertise to other instances
    #[arg(long, value_name = "H", default_value = "127.0.0.1")]
    host: String,
    /// State stores and, on the embedded engine, the log [default:
    /// <tmp>/rust-streams-activity-<port>]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Generated events per second; 0 = as fast as possible
    #[arg(long, value_name = "R", default_value_t = 200.0, value_parser = rate,
          allow_negative_numbers = true)]
    rate: f64,
    /// Stop generating after N events, views and clicks (user and page records come on
    /// top) [default: never]
    #[arg(long, value_name = "N")]
    events: Option<u64>,
    /// Generator seed
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,
    /// Deterministic input: event time starts at MS (ms since the epoch), --rate is events
    /// per second of event time, the --events N events are written unpaced (or --speedup):
    /// the same --seed, --start-time, --rate and --events write the same bytes. Idle advance
    /// is off (--set streams.idle.advance.ms=5000 turns it on)
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    start_time: Option<i64>,
    /// With --start-time: write the same events paced, event time running X times as fast
    /// as the wall clock from when the app runs (the clock stops while a rebalance stops
    /// the app here)
    #[arg(long, value_name = "X", value_parser = speedup, allow_negative_numbers = true)]
    speedup: Option<f64>,
    /// Generate only once N instances (this one included) run the app's tasks, as their
    /// APIs say, so that no input piles up while a group forms [default: 1 with --speedup,
    /// else no wait]
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>,
          allow_negative_numbers = true)]
    wait_for_instances: Option<usize>,
    /// Send the records of a recording (JSON lines) instead of generating (its leading user
    /// and page records first)
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Write the reference data and --events N generated events (with their profile
    /// updates) to FILE and exit
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Only process (another instance or producer writes the input)
    #[arg(long = "no-generate", action = ArgAction::SetFalse)]
    generate: bool,
    /// Partitions of the input topics when created
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = at_least_one::<u32>,
          allow_negative_numbers = true)]
    partitions: u32,
    /// Stream threads
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least_one::<usize>,
          allow_negative_numbers = true)]
    threads: usize,
    /// Run on Kafka (host:port,...) instead of the embedded engine
    #[arg(long, value_name = "LIST")]
    bootstrap_servers: Option<String>,
    /// With --events or --replay: exit once all input is processed, printing the
    /// throughput
    #[arg(long)]
    exit_when_done: bool,
    /// Any StreamsConfig setting (docs/CONFIG.md), e.g. --set
    /// consumer.session.timeout.ms=10000; repeatable. Applied over the app's own settings
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = setting)]
    settings: Vec<(String, String)>,
}

/// `--rate`: 0 or more events per second.
fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r >= 0.0 => Ok(r),
        Ok(_) => Err("must be 0 or more".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `--speedup`: a finite factor above 0.
fn speedup(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A count of at least 1 (`--partitions`, `--threads`, `--wait-for-instances`).
fn at_least_one<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    let n: T = s.parse().map_err(|e: T::Err| e.to_string())?;
    if n < T::from(1) {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// `--set KEY=VALUE` (the value may contain `=`).
fn setting(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((k.trim().to_string(), v.to_string()))
}

impl Args {
    /// Checks what one flag's value parser cannot: flags that need or exclude others.
    fn validate(self) -> Result<Self, clap::Error> {
        let fail = |kind, msg: &str| Err(Args::command().error(kind, msg));
        if self.record.is_some() && self.events.is_none() {
            return fail(
                ErrorKind::MissingRequiredArgument,
                "--record needs --events N (how many events to write)",
            );
        }
        if self.start_time.is_some() && (self.events.is_none() || self.replay.is_some()) {
            return fail(
                ErrorKind::ArgumentConflict,
                "--start-time needs --events N (and generated input, not --replay)",
            );
        }
        if self.speedup.is_some() && self.start_time.is_none() {
            return fail(
                ErrorKind::MissingRequiredArgument,
                "--speedup needs --start-time (it paces deterministic input)",
            );
        }
        if self.wait_for_instances.is_some() && (!self.generate || self.record.is_some()) {
            return fail(
                ErrorKind::ArgumentConflict,
                "--wait-for-instances needs an instance that generates and runs the app \
                 (not --no-generate or --record)",
            );
        }
        if self.exit_when_done && self.events.is_none() && self.replay.is_none() {
            return fail(
                ErrorKind::MissingRequiredArgument,
                "--exit-when-done needs bounded input: --events N or --replay FILE",
            );
        }
        Ok(self)
    }

    /// The command line `args` (the program name first), checked.
    fn try_parse_checked<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Args::try_parse_from(args)?.validate()
    }
}

type AppResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long the simulation runs before its first event is sent (see [`Source::new`]).
const WARM_UP: Duration = Duration::from_secs(10 * 60);

/// The records the generator thread sends, with their wall-clock pacing.
enum Source {
    /// Generated: event time starts now and is followed in real time at `rate` events/s
    /// (or, unpaced, starts early enough that the last of `events` is about now; or, with
    /// `--start-time`, starts there, unpaced or with `--speedup` paced).
    Generated {
        /// How many views and clicks to send (profile updates come on top).
        events: Option<u64>,
        /// Ms of event time per ms of wall time since the start (1: real time); `None`:
        /// unpaced.
        speedup: Option<f64>,
        generator: Box<ActivityGenerator>,
        start_ms: i64,
    },
    /// A recording, sent at `rate` records/s with its own timestamps; `first` is the record
    /// read past its leading reference data.
    Replay {
        replay: generator::Replay,
        limiter: RateLimiter,
        first: Option<InputRecord>,
    },
}

impl Source {
    fn new(args: &Args) -> AppResult<Self> {
        if let Some(path) = &args.replay {
            return Ok(Source::Replay {
                replay: generator::replay_events(path)?,
                limiter: RateLimiter::new(args.rate),
                first: None,
            });
        }
        // Deterministic input (`--start-time`) is paced only with `--speedup`, and then only
        // when each event is written, never what is written: nothing depends on the clock.
        let speedup = match args.start_time {
            Some(_) => args.speedup,
            None => (args.rate > 0.0).then_some(1.0),
        };
        // Unpaced bounded runs simulate 200 events/s of event time ending about now, or
        // `--rate` events/s from `--start-time`.
        let simulated = if args.rate > 0.0 { args.rate } else { 200.0 };
        let start_ms = match (args.start_time, speedup, args.events) {
            (Some(start), _, _) => start,
            (None, None, Some(n)) => now_ms() - (n as f64 / simulated * 1000.0) as i64,
            _ => now_ms(),
        };
        // Visits last minutes: a simulation that started at `start_ms` would ramp up for
        // minutes. It starts WARM_UP earlier and the events before `start_ms` are skipped, so
        // visits are in progress and the rate is steady from the first second.
        let generator = ActivityGenerator::under_way(
            GeneratorConfig {
                seed: args.seed,
                start_ms,
                events_per_second: simulated,
                ..GeneratorConfig::default()
            },
            WARM_UP,
        );
        Ok(Source::Generated {
            events: args.events,
            speedup,
            generator: Box::new(generator),
            start_ms,
        })
    }

    /// The reference data to write before anything else: the generator's catalogue, or the
    /// user and page records a recording starts with.
    fn catalogue(&mut self) -> AppResult<Vec<InputRecord>> {
        match self {
            Source::Generated { generator, .. } => Ok(generator.catalogue()),
            Source::Replay { replay, first, .. } => {
                let mut out = Vec::new();
                for record in replay.by_ref() {
                    let record = record?;
                    if record.is_activity() {
                        *first = Some(record);
                        break;
                    }
                    out.push(record);
                }
                Ok(out)
            }
        }
    }

    /// The next record, after waiting until it is due; `None` at the end (`sent`: the views
    /// and clicks sent so far).
    fn next(&mut self, started: Instant, sent: u64) -> AppResult<Option<InputRecord>> {
        match self {
            Source::Replay {
                replay,
                limiter,
                first,
            } => match first.take().map(Ok).or_else(|| replay.next()) {
                None => Ok(None),
                Some(record) => {
                    limiter.acquire();
                    Ok(Some(record?))
                }
            },
            Source::Generated {
                events,
                speedup,
                generator,
                start_ms,
            } => {
                if events.is_some_and(|n| sent >= n) {
                    return Ok(None);
                }
                let Some(record) = generator.next_record() else {
                    return Ok(None);
                };
                if let Some(speedup) = *speedup {
                    let ahead = u64::try_from(record.ts() - *start_ms).unwrap_or_default();
                    let due = Duration::from_secs_f64(ahead as f64 / 1000.0 / speedup);
                    let elapsed = started.elapsed();
                    if due > elapsed {
                        std::thread::sleep(due - elapsed);
                    }
                }
                Ok(Some(record))
            }
        }
    }
}

/// Writes the reference data through `producer` and waits until it is in the log.
fn write_catalogue(
    producer: &mut dyn Producer,
    catalogue: &[InputRecord],
    partitions: u32,
) -> AppResult<()> {
    for record in catalogue {
        producer.send(generator::outgoing_record(record, partitions)?)?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// When the generator may send (`--wait-for-instances`, `--speedup`).
struct Gate {
    streams: Arc<KafkaStreams>,
    /// The instances that must run the app, this one included.
    instances: usize,
    /// This instance's `application.server`.
    me: HostInfo,
    /// Asks the other instances for their state.
    runtime: tokio::runtime::Handle,
    /// Stop the pacing clock while the app does not run here (`--speedup`).
    pause: bool,
}

impl Gate {
    fn runs_here(&self) -> bool {
        self.streams.state() == StreamsState::Running
    }

    /// The app runs here, in a group of at least `instances` instances, each of which
    /// says over its API that it runs (has its tasks).
    fn group_runs(&self) -> bool {
        if !self.runs_here() {
            return false;
        }
        if self.instances <= 1 {
            return true;
        }
        let Ok(all) = self.streams.metadata_for_all_clients() else {
            return false;
        };
        all.len() >= self.instances
            && all
                .iter()
                .filter_map(|m| m.host.as_ref())
                .filter(|h| **h != self.me)
                .all(|h| {
                    self.runtime
                        .block_on(web::http_get(h, "/api/status"))
                        .ok()
                        .and_then(|body| serde_json::from_str::<web::Status>(&body).ok())
                        .is_some_and(|s| s.state == "Running")
                })
    }
}

/// Waits while `ready` is false and `stop` is not set.
fn wait_until(stop: &AtomicBool, ready: impl Fn() -> bool) {
    while !stop.load(Ordering::Relaxed) && !ready() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The generator thread: sends records until the source ends or `stop` is set; flushes at
/// least every 100 ms so that the app sees events in real time, and around a profile
/// update, so that the update is in the log after every earlier view and before every later
/// one (the app's task then processes them in timestamp order). Returns the views and
/// clicks sent. With a `gate` it starts,
/// and its pacing counts from, when the group runs (see [`Gate::group_runs`]), and with
/// `Gate::pause` its pacing clock stops while a rebalance stops the app here: paced input
/// must not pile up while the group forms or rebalances, or the instances would meet it as
/// a backlog.
fn spawn_generator(
    mut source: Source,
    mut producer: Box<dyn Producer>,
    partitions: u32,
    stats: Arc<Stats>,
    gate: Option<Gate>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> JoinHandle<AppResult<u64>> {
    std::thread::spawn(move || {
        if let Some(gate) = &gate {
            wait_until(&stop, || gate.group_runs());
            tracing::info!(
                instances = gate.instances,
                "the group runs the app: generating"
            );
        }
        let mut started = Instant::now();
        let mut last_flush = Instant::now();
        let mut sent = 0u64;
        let result = (|| -> AppResult<()> {
            while !stop.load(Ordering::Relaxed) {
                if let Some(gate) = gate.as_ref().filter(|g| g.pause && !g.runs_here()) {
                    let paused = Instant::now();
                    producer.flush(Duration::from_secs(30))?;
                    wait_until(&stop, || gate.runs_here());
                    started += paused.elapsed();
                    tracing::info!(paused = ?paused.elapsed(), "the app runs again: generating");
                }
                let Some(record) = source.next(started, sent)? else {
                    break;
                };
                if !record.is_activity() {
                    // A profile update goes into the log after the views sent before it and
                    // before those sent after it (a flush appends batches of different
                    // partitions in any order).
                    producer.flush(Duration::from_secs(30))?;
                    producer.send(generator::outgoing_record(&record, partitions)?)?;
                    producer.flush(Duration::from_secs(30))?;
                    last_flush = Instant::now();
                    continue;
                }
                producer.send(generator::outgoing_record(&record, partitions)?)?;
                sent += 1;
                if sent.is_multiple_of(1024) || last_flush.elapsed() >= Duration::from_millis(100) {
                    producer.poll()?;
                    producer.flush(Duration::from_secs(30))?;
                    stats.generated.store(sent, Ordering::Relaxed);
                    last_flush = Instant::now();
                }
            }
            producer.flush(Duration::from_secs(30))?;
            stats.generated.store(sent, Ordering::Relaxed);
            Ok(())
        })();
        done.store(true, Ordering::SeqCst);
        result.map(|()| sent)
    })
}

/// What the sampler needs to turn the runtime's metrics into the app's figures.
struct Sampler {
    streams: Arc<KafkaStreams>,
    stats: Arc<Stats>,
    /// The sub-topologies that read `page_views` or `clicks`: their records processed are
    /// input events.
    input_subtopologies: Vec<u32>,
    /// Reads the end offsets of the final-results topic (no group).
    offsets: Box<dyn Consumer>,
    /// Looks up the final-results topic's partitions until the runtime has created it.
    admin: Arc<dyn Admin>,
    final_partitions: u32,
    /// Each input task's records processed at the last sample.
    last_counts: std::collections::HashMap<streams_core::record::TaskId, u64>,
    /// Input events processed by this instance, summed over samples.
    processed: u64,
}

impl Sampler {
    fn sample(&mut self) {
        let metrics = self.streams.metrics();
        // A task's count starts again from 0 when the task is recreated (it moved between
        // threads or instances): add what each task processed since the last sample.
        for t in metrics
            .tasks()
            .filter(|t| t.state != streams_core::runtime::TaskState::Standby)
            .filter(|t| self.input_subtopologies.contains(&t.id.subtopology))
        {
            let last = self.last_counts.insert(t.id, t.metrics.processed);
            self.processed += match last {
                Some(before) if before <= t.metrics.processed => t.metrics.processed - before,
                _ => t.metrics.processed,
            };
        }
        self.stats.sample(self.processed, metrics.lag());
        if self.final_partitions == 0 {
            self.final_partitions = self
                .admin
                .topics()
                .ok()
                .and_then(|t| t.get(PAGE_VIEW_COUNTS_FINAL_TOPIC).copied())
                .unwrap_or(0);
        }
        let mut closed = 0u64;
        for p in 0..self.final_partitions {
            let tp = TopicPartition::new(PAGE_VIEW_COUNTS_FINAL_TOPIC, p);
            if let Ok((low, high)) = self.offsets.watermarks(&tp) {
                closed += u64::try_from(high - low.min(high)).unwrap_or_default();
            }
        }
        self.stats.windows_closed.store(closed, Ordering::Relaxed);
    }
}

fn input_subtopologies(topology: &streams_core::topology::Topology) -> Vec<u32> {
    topology
        .describe()
        .subtopologies
        .iter()
        .filter(|s| {
            s.nodes.iter().any(|n| match &n.kind {
                NodeType::Source { topics } => topics
                    .iter()
                    .any(|t| t == PAGE_VIEWS_TOPIC || t == CLICKS_TOPIC),
                _ => false,
            })
        })
        .map(|s| s.id)
        .collect()
}

fn main() {
    // clap prints `--help` and exits 0, or prints the error naming the flag and exits 2.
    let args = Args::try_parse_checked(std::env::args_os()).unwrap_or_else(|e| e.exit());
    // The framework's warnings (a broker gone, a rebalance error, skipped records) reach
    // stderr; `RUST_LOG` chooses more, e.g. `RUST_LOG=streams_core=debug`.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = run(args) {
        eprintln!("activity: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> AppResult<()> {
    if let Some(path) = args.record.clone() {
        let n = args.events.unwrap_or_default();
        // Unpaced; with --start-time, --rate is the simulated rate, as when the app runs.
        let rate = if args.start_time.is_some() {
            args.rate
        } else {
            0.0
        };
        let mut source = Source::new(&Args {
            rate,
            speedup: None,
            ..args
        })?;
        let started = Instant::now();
        let mut records = source.catalogue()?;
        let mut sent = 0;
        while let Some(r) = source.next(started, sent)? {
            sent += u64::from(r.is_activity());
            records.push(r);
        }
        let written = generator::record_events(&path, records)?;
        println!(
            "wrote {sent} of {n} events and {} user and page records to {}",
            written - usize::try_from(sent).unwrap_or(0).min(written),
            path.display()
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> AppResult<()> {
    // Bind first: with --port 0 the port is known only now, and it is the instance's
    // application.server.
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let local: SocketAddr = listener.local_addr()?;
    let me = HostInfo {
        host: args.host.clone(),
        port: local.port(),
    };
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("rust-streams-activity-{}", local.port()))
    });
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create --data-dir {}: {e}", data_dir.display()))?;

    let mut config = StreamsConfig::new(activity::APPLICATION_ID)
        .with_state_dir(data_dir.join("state"))
        .with_commit_interval(Duration::from_secs(1))
        .with_num_stream_threads(args.threads)
        // On the embedded engine the threads move through event time together: catching
        // up a backlog, views and clicks reach the by-page and click-through windows of
        // both threads within their grace (`--set streams.thread.alignment=false` lets
        // each thread run at its pace). On Kafka it stays off: records wait in
        // librdkafka's send queue, which the alignment does not see, and with it on the
        // two-instance crash test on `streams serve` no longer caught up within 150 s.
        .with_thread_alignment(args.bootstrap_servers.is_none())
        .with_application_server(me.to_string());
    // Idle advance moves stream time with the wall clock: not with deterministic input.
    if args.start_time.is_none() {
        config = config.with_idle_advance(Duration::from_secs(5));
    }
    if let Some(servers) = &args.bootstrap_servers {
        config = config.with_bootstrap_servers(servers.split(',').map(str::trim));
    }
    if !args.settings.is_empty() {
        let mut props = config.to_properties();
        props.extend(args.settings.iter().cloned());
        config = StreamsConfig::from_properties(&props)?;
    }
    let clients: Arc<dyn ClientSupplier> = match &args.bootstrap_servers {
        Some(_) => kafka_clients(&config)?,
        None => {
            let engine = LogEngine::open(&data_dir.join("log"))?;
            Arc::new(EmbeddedClients::new(Arc::new(engine)))
        }
    };
    let partitions = generator::ensure_input_topics(clients.admin()?.as_ref(), args.partitions)?;
    // The reference data goes first, before the app starts: the page catalogue is a global
    // table, which the app loads completely before it processes anything, and every view
    // then finds its user's profile and its page.
    let source = if args.generate {
        let mut source = Source::new(&args)?;
        let catalogue = source.catalogue()?;
        let mut producer = clients.producer("activity-generator")?;
        write_catalogue(producer.as_mut(), &catalogue, partitions)?;
        Some((source, producer))
    } else {
        None
    };

    let topology = activity::topology(&ActivityConfig::default())?;
    let input_subtopologies = input_subtopologies(&topology);
    // Kafka Streams' metrics in the Prometheus text format, served at `GET /metrics`
    // (installed before the app starts, so that its threads publish from their first loop).
    let metrics = streams_core::metrics_export::install_prometheus()?;
    let mut streams = KafkaStreams::with_clients(topology, config, clients.clone())?;
    streams.start()?;
    let streams = Arc::new(streams);
    let stats = Arc::new(Stats::default());

    // The generator.
    let stop = Arc::new(AtomicBool::new(false));
    let generated = Arc::new(AtomicBool::new(!args.generate));
    let generator = if let Some((source, producer)) = source {
        Some(spawn_generator(
            source,
            producer,
            partitions,
            stats.clone(),
            args.wait_for_instances
                .or(args.speedup.map(|_| 1))
                .map(|instances| Gate {
                    streams: streams.clone(),
                    instances,
                    me: me.clone(),
                    runtime: tokio::runtime::Handle::current(),
                    pause: args.speedup.is_some(),
                }),
            stop.clone(),
            generated.clone(),
        ))
    } else {
        None
    };

    // The sampler and the status line.
    let sampler = Arc::new(Mutex::new(Sampler {
        streams: streams.clone(),
        stats: stats.clone(),
        input_subtopologies,
        offsets: clients.restore_consumer("activity-stats")?,
        admin: clients.admin()?,
        final_partitions: 0,
        last_counts: std::collections::HashMap::new(),
        processed: 0,
    }));
    let status_task = {
        let sampler = sampler.clone();
        let stats = stats.clone();
        let streams = streams.clone();
        tokio::spawn(async move {
            let tty = std::io::stdout().is_terminal();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                let sampler = sampler.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    sampler.lock().unwrap_or_else(|e| e.into_inner()).sample();
                })
                .await;
                n += 1;
                let totals = streams.metrics().total();
                let line = format!(
                    "{:?} · {} events/s · lag {} · {} records processed · {} windows closed · {} dropped",
                    streams.state(),
                    stats.events_per_sec(),
                    stats.lag(),
                    stats.processed(),
                    stats.windows_closed.load(Ordering::Relaxed),
                    totals.dropped_records + totals.skipped_records,
                );
                let mut out = std::io::stdout().lock();
                if tty {
                    let _ = write!(out, "\r{line:<100}");
                } else if n.is_multiple_of(5) {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
        })
    };

    // The API and the dashboard.
    let router = web::router(Arc::new(WebState {
        streams: streams.clone(),
        stats: stats.clone(),
        me: Some(me.clone()),
    }))
    .route(
        "/metrics",
        axum::routing::get(move || {
            let text = metrics.render();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        streams_core::metrics_export::PrometheusExporter::CONTENT_TYPE,
                    )],
                    text,
                )
            }
        }),
    );
    println!(
        "activity app ({}) running; dashboard: http://{}/",
        match &args.bootstrap_servers {
            Some(s) => format!("on Kafka at {s}"),
            None => format!("embedded engine in {}", data_dir.display()),
        },
        me
    );
    println!("press Ctrl-C to stop");
    let started = Instant::now();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = server_stopped.await;
            })
            .await
    });

    // Run until a signal, the app fails, or (with --exit-when-done) all input is processed.
    let finished = {
        let streams = streams.clone();
        let generated = generated.clone();
        let exit_when_done = args.exit_when_done;
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                match streams.state() {
                    StreamsState::Error | StreamsState::NotRunning => {
                        return Err(match streams.failure() {
                            Some(e) => e.to_string(),
                            None => format!("the app stopped ({:?})", streams.state()),
                        });
                    }
                    _ => {}
                }
                if exit_when_done && generated.load(Ordering::SeqCst) {
                    let s = streams.clone();
                    let caught_up = tokio::task::spawn_blocking(move || {
                        s.wait_until_caught_up(Duration::from_secs(3600))
                    })
                    .await;
                    return match caught_up {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                }
            }
        }
    };
    let outcome: Result<bool, String> = tokio::select! {
        r = shutdown_signal() => r.map(|()| false).map_err(|e| e.to_string()),
        r = finished => r,
    };
    let elapsed = started.elapsed();
    println!();
    // The generator stops (with --exit-when-done it has finished already).
    stop.store(true, Ordering::SeqCst);
    let generator_result = match generator {
        Some(g) => g.join().map_err(|_| "the generator thread panicked")?,
        None => Ok(0),
    };
    if matches!(outcome, Ok(true)) {
        // All input was sent and processed.
        sampler.lock().unwrap_or_else(|e| e.into_inner()).sample();
        let events = match &generator_result {
            Ok(sent) if args.generate => *sent,
            _ => stats.processed(),
        };
        println!(
            "processed {events} input events in {elapsed:.2?}: {:.0} events/s ({} windows closed)",
            events as f64 / elapsed.as_secs_f64(),
            stats.windows_closed.load(Ordering::Relaxed)
        );
    }
    println!("stopping...");
    let _ = stop_server.send(());
    status_task.abort();
    let _ = server.await;
    drop(sampler);
    match Arc::try_unwrap(streams) {
        Ok(streams) => streams.close_with_timeout(Duration::from_secs(60))?,
        // A request still holds the app: dropping the last reference closes it.
        Err(streams) => drop(streams),
    }
    let sent = generator_result?;
    if args.generate {
        println!("stopped; the generator sent {sent} events");
    } else {
        println!("stopped");
    }
    outcome.map(|_| ()).map_err(Into::into)
}

#[cfg(feature = "kafka")]
fn kafka_clients(config: &StreamsConfig) -> AppResult<Arc<dyn ClientSupplier>> {
    Ok(Arc::new(streams_core::client::kafka::KafkaClients::new(
        config,
    )?))
}

#[cfg(not(feature = "kafka"))]
fn kafka_clients(_config: &StreamsConfig) -> AppResult<Arc<dyn ClientSupplier>> {
    Err("--bootstrap-servers needs the `kafka` feature of streams-examples".into())
}

#[cfg(test)]
#[path = "activity/flags.rs"]
mod flags;

#[cfg(test)]
mod tests {
    use super::flags::FLAGS;
    use super::*;

    /// `activity <s>` parsed and checked; a failure as clap prints it.
    fn args(s: &str) -> Result<Args, String> {
        parse(s).map_err(|e| e.to_string())
    }

    fn parse(s: &str) -> Result<Args, clap::Error> {
        Args::try_parse_checked(std::iter::once("activity").chain(s.split_whitespace()))
    }

    #[test]
    fn defaults_and_flags() {
        let a = args("").unwrap();
        assert_eq!(
            (a.port, a.rate, a.partitions, a.threads),
            (8080, 200.0, 4, 2)
        );
        assert!(a.generate && a.bootstrap_servers.is_none());
        // Defaults stay those of the hand-written parser clap replaced.
        assert_eq!(
            (a.host.as_str(), a.seed, a.data_dir),
            ("127.0.0.1", 42, None)
        );
        assert!(a.events.is_none() && a.start_time.is_none() && a.settings.is_empty());
        assert!(a.replay.is_none() && a.record.is_none() && !a.exit_when_done);
        let a = args("--port 0 --rate 0 --events 10 --exit-when-done --no-generate").unwrap();
        assert_eq!((a.port, a.events), (0, Some(10)));
        assert!(!a.generate && a.exit_when_done);
        let a = args("--start-time 5 --events 3 --speedup 20 --wait-for-instances 3").unwrap();
        assert_eq!((a.speedup, a.wait_for_instances), (Some(20.0), Some(3)));
        assert_eq!(parse("--help").unwrap_err().kind(), ErrorKind::DisplayHelp);
        let a = args("--set streams.repartition.purge=false --set consumer.x=a=b").unwrap();
        assert_eq!(
            a.settings,
            vec![
                ("streams.repartition.purge".to_string(), "false".to_string()),
                ("consumer.x".to_string(), "a=b".to_string())
            ]
        );
    }

    /// The error of `activity <s>`, which must be a usage error (exit status 2).
    fn bad(s: &str) -> String {
        let e = parse(s).expect_err(s);
        assert_eq!(e.exit_code(), 2, "{s}: {e}");
        e.to_string()
    }

    #[test]
    fn bad_flags_are_named() {
        for (line, named) in [
            ("--port", "--port"),
            ("--port x", "--port"),
            ("--port 70000", "--port"),
            ("--frobnicate", "--frobnicate"),
            ("--rate -1", "--rate"),
            ("--rate fast", "--rate"),
            ("--events -3", "'-3'"),
            ("--partitions 0", "--partitions"),
            ("--threads 0", "--threads"),
            ("--set nothing", "KEY=VALUE"),
            ("--start-time x", "--start-time"),
            ("--exit-when-done", "bounded input"),
            ("--record f", "--events"),
            ("--start-time 5", "--events"),
            ("--start-time 5 --events 3 --replay f", "--replay"),
            ("--speedup 10 --events 3", "needs --start-time"),
            ("--no-generate --no-generate", "--no-generate"),
        ] {
            let e = bad(line);
            assert!(e.contains(named), "{line}: {e}");
        }
        assert!(bad("--port x").contains("'x'"));
        for v in ["0", "-2", "inf", "NaN"] {
            let e = bad(&format!("--start-time 5 --events 3 --speedup {v}"));
            assert!(e.contains("--speedup"), "{v}: {e}");
        }
        for line in [
            "--wait-for-instances 0",
            "--wait-for-instances 3 --no-generate",
            "--wait-for-instances 3 --events 5 --record f",
        ] {
            let e = bad(line);
            assert!(e.contains("--wait-for-instances"), "{line}: {e}");
        }
    }

    #[test]
    fn help_has_a_line_per_flag() {
        let help = Args::command().render_help().to_string();
        // The flag lines: indented a little, starting with the flag (`-h, --help`).
        let flag_lines: Vec<&str> = help
            .lines()
            .filter(|l| l.starts_with("  -") || l.starts_with("      --"))
            .collect();
        assert_eq!(flag_lines.len(), FLAGS.len(), "{help}");
        for (line, flag) in flag_lines.iter().zip(FLAGS) {
            let first = line.trim_start().trim_start_matches("-h, ");
            assert!(
                first.split_whitespace().next() == Some(flag),
                "{flag}: {line}"
            );
            // Each line describes its flag (more than the flag and its value name).
            assert!(first.split_whitespace().count() > 2, "{line}");
        }
        assert!(
            help.contains("[default: 8080]") && help.contains("RUST_LOG"),
            "{help}"
        );
    }

    #[test]
    fn deterministic_input_does_not_depend_on_the_clock() {
        let a = args("--start-time 1700000000000 --events 500 --rate 20 --seed 3").unwrap();
        assert_eq!(a.start_time, Some(1_700_000_000_000));
        assert_eq!(a.speedup, None);
        let first = events(&a);
        assert_eq!(first.iter().filter(|r| r.is_activity()).count(), 500);
        assert!(first[0].ts() >= 1_700_000_000_000);
        // 500 events at 20 per second of event time: about 25 s, written at once.
        let span = first.last().map_or(0, InputRecord::ts) - first[0].ts();
        assert!((15_000..40_000).contains(&span), "{span} ms");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(events(&a), first);
    }

    /// All records of `a`'s source (after its catalogue), taken as the generator thread
    /// takes them.
    fn events(a: &Args) -> Vec<InputRecord> {
        let mut source = Source::new(a).unwrap();
        assert!(!source.catalogue().unwrap().is_empty());
        let started = Instant::now();
        let mut out = Vec::new();
        let mut sent = 0;
        while let Some(r) = source.next(started, sent).unwrap() {
            sent += u64::from(r.is_activity());
            out.push(r);
        }
        out
    }

    #[test]
    fn speedup_paces_the_same_deterministic_events() {
        let unpaced =
            events(&args("--start-time 1700000000000 --events 300 --rate 20 --seed 3").unwrap());
        let a = args("--start-time 1700000000000 --events 300 --rate 20 --seed 3 --speedup 100")
            .unwrap();
        assert_eq!((a.speedup, a.wait_for_instances), (Some(100.0), None));
        let started = Instant::now();
        let paced = events(&a);
        let took = started.elapsed();
        assert_eq!(paced, unpaced);
        // The last event is due (its event time - the start) / 100 after the start.
        let last = paced.last().map_or(0, InputRecord::ts);
        let due = Duration::from_millis(u64::try_from((last - 1_700_000_000_000) / 100).unwrap());
        assert!(took >= due, "{took:?} < {due:?}");
        assert!(due >= Duration::from_millis(50), "{due:?}");
    }
}
