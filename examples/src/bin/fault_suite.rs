//! The exactly-once fault suite (docs/RELIABILITY.md): an app with a repartition, a
//! suppressed windowed count and a stream-stream join, killed with SIGKILL again and again
//! while it processes a deterministic input on the embedded engine, then checked record by
//! record against a computation of the input written here (plain maps and loops, never
//! the framework).
//!
//! ```text
//! fault_suite generate --dir D [--records N] [--seed S] [--start-ms MS]
//! fault_suite app      --dir D --guarantee at_least_once|exactly_once_v2 [--exit-when-done]
//! fault_suite drive    --dir D --kills K --guarantee G [--seed S] [--records N]
//!                      [--start-ms MS] [--kill-min-ms A] [--kill-max-ms B]
//!                      [--final-timeout-secs T]
//! ```
//!
//! `drive` prints one JSON line (`engine`, `guarantee`, `kills`, `records_in`, `lost`,
//! `duplicated`, `recovery_p50_ms`, `recovery_p99_ms`, then details) and exits 1 when a
//! result was lost, or duplicated under `exactly_once_v2`.
//!
//! The integration test `tests/tests/eos_fault_suite.rs` compiles this file as a module and
//! calls [`drive`] with its own test binary as the child; hence `pub(crate)` items and
//! only dependencies that both packages have (std, streams-core, serde_json,
//! tracing-subscriber).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams_core::config::{ClientPrefix, ProcessingGuarantee};
use streams_core::dsl::{BufferConfig, Suppressed};
use streams_core::error::{StateError, StreamsError};
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{
    Isolation, KafkaStreams, LogEngine, LogRecord, NewRecord, StreamsState, TaskState, TopicConfig,
};
use streams_core::window::TimeWindows;

/// The input topic of page views (key: user, value: `v<n>:<page>`).
pub(crate) const VIEWS: &str = "fs-views";
/// The input topic of clicks (key: user, value: `c<n>`, `n` the clicked view's number).
pub(crate) const CLICKS: &str = "fs-clicks";
/// Views per page (key: page, value: the running count in decimal).
pub(crate) const PAGE_COUNTS: &str = "fs-page-counts";
/// Final views per user per 10 s window (key: `<user>@<window start>`, value: the count).
pub(crate) const WINDOW_COUNTS: &str = "fs-window-counts";
/// Every view joined with every click of its user at most 3 s apart (key: user, value:
/// `<view>|<click>`).
pub(crate) const JOINED: &str = "fs-joined";
/// The outputs checked, in the summary's order.
const OUTPUTS: [&str; 3] = [PAGE_COUNTS, WINDOW_COUNTS, JOINED];
/// Partitions of every topic the suite creates.
pub(crate) const PARTITIONS: u32 = 4;
/// The app's `application.id` (its consumer group).
pub(crate) const APP_ID: &str = "fault-suite";
/// The smallest and default input size of `generate` and `drive`.
pub(crate) const DEFAULT_RECORDS: usize = 200_000;
/// Distinct users (view and click keys).
const USERS: u64 = 500;
/// Distinct pages.
const PAGES: u64 = 100;
/// Event time between two consecutive views, before jitter.
const STEP_MS: i64 = 10;
/// One view in `JITTER_ONE_IN` is out of order by up to `JITTER_MS`.
const JITTER_ONE_IN: u64 = 50;
/// How far out of order a view may be.
const JITTER_MS: u64 = 2_000;
/// Clicks per 100 views.
const CLICKS_PER_100: u64 = 15;
/// A click comes this long after its view, at least...
const CLICK_DELAY_MIN_MS: u64 = 200;
/// ... and at most.
const CLICK_DELAY_MAX_MS: u64 = 2_000;
/// The tumbling windows' size.
const WINDOW_MS: i64 = 10_000;
/// The windows' grace: more than any record here is late (see [`generate_events`]).
const WINDOW_GRACE_MS: i64 = 5_000;
/// Views and clicks at most this far apart join.
const JOIN_MS: i64 = 3_000;
/// The join's grace.
const JOIN_GRACE_MS: i64 = 5_000;
/// The last record of every partition is this far past the rest, so that every window of
/// the rest closes and its suppressed count is emitted.
const SENTINEL_AHEAD_MS: i64 = 3_600_000;
/// What the app's lines for the driver start with.
const MARK: &str = "fault-suite:";

/// What can go wrong in the suite.
#[derive(Debug)]
pub(crate) enum SuiteError {
    /// A bad command line.
    Usage(String),
    /// The app or its topology failed.
    Streams(StreamsError),
    /// The log engine failed.
    State(StateError),
    /// A file or process operation failed.
    Io {
        /// What was being done.
        action: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A child app misbehaved (exited early, failed, or did not finish in time).
    Child(String),
    /// An output record could not be read as the app writes it.
    Output(String),
    /// The Kafka-protocol server (`streams serve`) did not start.
    Serve(streams_state::serve::ServeError),
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => write!(f, "{m}"),
            Self::Streams(e) => write!(f, "streams: {e}"),
            Self::State(e) => write!(f, "log engine: {e}"),
            Self::Io { action, source } => write!(f, "{action}: {source}"),
            Self::Child(m) => write!(f, "app: {m}"),
            Self::Output(m) => write!(f, "output: {m}"),
            Self::Serve(e) => write!(f, "streams serve: {e}"),
        }
    }
}

impl std::error::Error for SuiteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Streams(e) => Some(e),
            Self::State(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::Serve(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StreamsError> for SuiteError {
    fn from(e: StreamsError) -> Self {
        Self::Streams(e)
    }
}

impl From<streams_state::serve::ServeError> for SuiteError {
    fn from(e: streams_state::serve::ServeError) -> Self {
        Self::Serve(e)
    }
}

impl From<StateError> for SuiteError {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

impl From<TopologyError> for SuiteError {
    fn from(e: TopologyError) -> Self {
        Self::Streams(e.into())
    }
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SuiteError {
    let action = action.into();
    move |source| SuiteError::Io { action, source }
}

// ---------------------------------------------------------------------------------------
// The input
// ---------------------------------------------------------------------------------------

/// A seeded pseudo-random generator (SplitMix64), so that a seed gives the same input and
/// the same kill times on every machine.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `[0, n)` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// One input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// [`VIEWS`] or [`CLICKS`].
    pub(crate) topic: &'static str,
    /// The user.
    pub(crate) user: String,
    /// `v<n>:<page>` for a view, `c<n>` for a click on view `n`.
    pub(crate) value: String,
    /// Event time.
    pub(crate) ts: i64,
}

impl Event {
    /// The page of a view.
    fn page(&self) -> &str {
        page_of(&self.value)
    }
}

/// The page of a view's value `v<n>:<page>`.
fn page_of(view: &str) -> &str {
    view.split_once(':').map_or(view, |(_, p)| p)
}

/// A key that [`partition_for_key`] puts on `partition`, for the sentinels.
fn sentinel_user(partition: u32) -> String {
    (0u32..)
        .map(|i| format!("sentinel-{i}"))
        .find(|k| partition_for_key(k.as_bytes(), PARTITIONS) == partition)
        .unwrap_or_default()
}

/// The input, per (topic, partition) in the order written: exactly `records` records.
///
/// Views come every [`STEP_MS`] of event time from `start_ms`, users uniform over
/// [`USERS`], pages skewed over [`PAGES`]; one in [`JITTER_ONE_IN`] is up to [`JITTER_MS`]
/// late. [`CLICKS_PER_100`] of 100 views get a click [`CLICK_DELAY_MIN_MS`] to
/// [`CLICK_DELAY_MAX_MS`] later; a click partition is written in timestamp order. The last
/// record of every partition of both topics is a sentinel view or click of a sentinel user
/// [`SENTINEL_AHEAD_MS`] past the rest, so stream time passes every other window's close.
///
/// Lateness: a task reads a views partition and the clicks partition of the same number
/// and processes the smallest head timestamp first, so its stream time is never more than
/// [`JITTER_MS`] past a record it processes — below both graces, so nothing is dropped.
pub(crate) fn generate_events(
    records: usize,
    seed: u64,
    start_ms: i64,
) -> BTreeMap<(&'static str, u32), Vec<Event>> {
    let sentinels = 2 * PARTITIONS as usize;
    let body = records.saturating_sub(sentinels);
    let mut rng = SplitMix::new(seed);
    let mut views: Vec<Event> = Vec::new();
    let mut clicks: Vec<Event> = Vec::new();
    let mut base = start_ms;
    let mut n = 0u64;
    while views.len() + clicks.len() < body {
        base += STEP_MS;
        let late = if rng.below(JITTER_ONE_IN) == 0 {
            rng.below(JITTER_MS + 1) as i64
        } else {
            0
        };
        let user = format!("user-{:03}", rng.below(USERS));
        // Skewed: the smaller of two uniform draws.
        let page = rng.below(PAGES).min(rng.below(PAGES));
        let ts = base - late;
        let clicked = rng.below(100) < CLICKS_PER_100;
        let delay = CLICK_DELAY_MIN_MS + rng.below(CLICK_DELAY_MAX_MS - CLICK_DELAY_MIN_MS + 1);
        views.push(Event {
            topic: VIEWS,
            user: user.clone(),
            value: format!("v{n}:/p/{page}"),
            ts,
        });
        if clicked && views.len() + clicks.len() < body {
            clicks.push(Event {
                topic: CLICKS,
                user,
                value: format!("c{n}"),
                ts: ts + delay as i64,
            });
        }
        n += 1;
    }
    let mut out: BTreeMap<(&'static str, u32), Vec<Event>> = BTreeMap::new();
    for topic in [VIEWS, CLICKS] {
        for p in 0..PARTITIONS {
            out.insert((topic, p), Vec::new());
        }
    }
    for e in views.into_iter().chain(clicks) {
        let p = partition_for_key(e.user.as_bytes(), PARTITIONS);
        out.entry((e.topic, p)).or_default().push(e);
    }
    for ((topic, _), events) in out.iter_mut() {
        if *topic == CLICKS {
            events.sort_by_key(|e| e.ts);
        }
    }
    let far = base + SENTINEL_AHEAD_MS;
    for p in 0..PARTITIONS {
        let user = sentinel_user(p);
        let view = n + u64::from(p);
        out.entry((VIEWS, p)).or_default().push(Event {
            topic: VIEWS,
            user: user.clone(),
            value: format!("v{view}:/p/sentinel"),
            ts: far,
        });
        out.entry((CLICKS, p)).or_default().push(Event {
            topic: CLICKS,
            user,
            value: format!("c{view}"),
            ts: far,
        });
    }
    out
}

/// Creates the topics and writes the input into the engine at `dir`/log; fails if the
/// input topic exists already.
pub(crate) fn generate(
    dir: &Path,
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
) -> Result<(), SuiteError> {
    let engine = LogEngine::open(&dir.join("log"))?;
    if engine.topic_config(VIEWS).is_some() {
        return Err(SuiteError::Usage(format!(
            "{} already holds an input; use a new --dir",
            dir.display()
        )));
    }
    for topic in [VIEWS, CLICKS, PAGE_COUNTS, WINDOW_COUNTS, JOINED] {
        engine.create_topic(topic, TopicConfig::new(PARTITIONS))?;
    }
    for ((topic, p), list) in events {
        for chunk in list.chunks(1_000) {
            let batch: Vec<NewRecord> = chunk
                .iter()
                .map(|e| NewRecord {
                    timestamp: e.ts,
                    key: Some(e.user.clone().into_bytes()),
                    value: Some(e.value.clone().into_bytes()),
                    headers: Vec::new(),
                })
                .collect();
            engine.append(topic, *p, &batch)?;
        }
    }
    engine.flush()?;
    Ok(())
}

/// Wall-clock time now, truncated to the hour: the default event-time start. Event time
/// near the wall clock keeps the window changelogs' time retention (window retention plus
/// a day) from deleting the input's state while the suite runs.
fn default_start_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    now - now.rem_euclid(3_600_000)
}

// ---------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------

/// The app's topology: views counted per page through a repartition, views per user per
/// 10 s window suppressed until the window closes, and views joined with clicks.
pub(crate) fn topology() -> Result<Topology, SuiteError> {
    let builder = StreamsBuilder::new();
    let views = builder.stream::<String, String>(VIEWS);
    let clicks = builder.stream::<String, String>(CLICKS);
    views
        .group_by(|_, v: &String| page_of(v).to_string())
        .count_with(Materialized::as_("fs-page-count-store"))
        .to_stream()
        .map_values(|n: Option<i64>| n.map_or_else(|| "null".to_string(), |n| n.to_string()))
        .to(PAGE_COUNTS);
    views
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(WINDOW_MS as u64),
            Duration::from_millis(WINDOW_GRACE_MS as u64),
        ))
        .count_with(Materialized::as_("fs-window-count-store"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|w, n| {
            (
                format!("{}@{}", w.key, w.window.start),
                n.map_or_else(|| "null".to_string(), |n| n.to_string()),
            )
        })
        .to(WINDOW_COUNTS);
    views
        .join(
            &clicks,
            |v: &String, c: &String| format!("{v}|{c}"),
            JoinWindows::of_time_difference_and_grace(
                Duration::from_millis(JOIN_MS as u64),
                Duration::from_millis(JOIN_GRACE_MS as u64),
            ),
        )
        .to(JOINED);
    Ok(builder.build()?)
}

/// Parses `at_least_once` or `exactly_once_v2`.
pub(crate) fn parse_guarantee(s: &str) -> Result<ProcessingGuarantee, SuiteError> {
    match s {
        "at_least_once" => Ok(ProcessingGuarantee::AtLeastOnce),
        "exactly_once_v2" => Ok(ProcessingGuarantee::ExactlyOnceV2),
        other => Err(SuiteError::Usage(format!(
            "--guarantee {other}: expected at_least_once or exactly_once_v2"
        ))),
    }
}

/// Prints a line for the driver (stdout is line-buffered: each line goes out at once).
fn say(what: &str) {
    println!("{MARK} {what}");
}

/// Says `processing` once a record was processed (or `idle` if the app runs with nothing
/// to process: everything was processed and committed before), and the progress.
fn report(app: &KafkaStreams, said_processing: &mut bool) {
    let m = app.metrics();
    let processed = m.total().processed;
    if !*said_processing {
        let idle = app.state() == StreamsState::Running
            && m.tasks().next().is_some()
            && m.tasks().all(|t| t.state == TaskState::Running)
            && m.lag() == 0;
        if processed > 0 {
            *said_processing = true;
            say("processing");
        } else if idle {
            *said_processing = true;
            say("idle");
        }
    }
    say(&format!("progress processed={processed} lag={}", m.lag()));
}

/// An app instance's broker: `streams serve` (or any Kafka-protocol broker) at `bootstrap`,
/// the instance's state in `dir`/state-`instance`.
#[derive(Debug, Clone)]
pub(crate) struct KafkaTarget {
    /// `bootstrap.servers`.
    pub(crate) bootstrap: String,
    /// The instance's number (its state directory).
    pub(crate) instance: usize,
}

/// The group session timeout of the app's consumers on Kafka: a killed instance's
/// partitions move after it.
const SESSION_TIMEOUT_MS: &str = "6000";

/// Runs one app instance: on the engine at `dir`/log with state in `dir`/state, or on the
/// broker of `kafka`. With `exit_when_done` it returns once all input is processed and
/// committed and the app is closed; otherwise it runs until killed (or fails).
pub(crate) fn run_app(
    dir: &Path,
    guarantee: ProcessingGuarantee,
    exit_when_done: bool,
    kafka: Option<&KafkaTarget>,
) -> Result<(), SuiteError> {
    // Commit interval: the guarantee's default (30 s at-least-once, 100 ms exactly-once);
    // caches on (the default 10 MiB).
    let config = StreamsConfig::new(APP_ID).with_processing_guarantee(guarantee);
    let mut app = match kafka {
        None => {
            let engine = Arc::new(LogEngine::open(&dir.join("log"))?);
            KafkaStreams::new(
                topology()?,
                config.with_state_dir(dir.join("state")),
                engine,
            )?
        }
        Some(k) => {
            let config = config
                .with_state_dir(dir.join(format!("state-{}", k.instance)))
                .with_bootstrap_servers([k.bootstrap.as_str()])
                .with_client_property(
                    ClientPrefix::Consumer,
                    "session.timeout.ms",
                    SESSION_TIMEOUT_MS,
                )
                .with_client_property(ClientPrefix::Consumer, "heartbeat.interval.ms", "500")
                .with_client_property(ClientPrefix::Consumer, "fetch.wait.max.ms", "50")
                .with_client_property(ClientPrefix::Producer, "linger.ms", "5");
            KafkaStreams::from_config(topology()?, config)?
        }
    };
    app.set_state_listener(|new, _| {
        if new == StreamsState::Running {
            say("running");
        }
    });
    app.start()?;
    say("started");
    let mut said_processing = false;
    if !exit_when_done {
        loop {
            report(&app, &mut said_processing);
            if app.state() == StreamsState::Error {
                return Err(SuiteError::Child(match app.failure() {
                    Some(e) => format!("the app stopped on an error: {e}"),
                    None => "the app stopped on an error".into(),
                }));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let done = AtomicBool::new(false);
    let caught_up = std::thread::scope(|s| {
        s.spawn(|| {
            let mut said = false;
            while !done.load(Ordering::SeqCst) {
                report(&app, &mut said);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let r = app.wait_until_caught_up(Duration::from_secs(3_600));
        done.store(true, Ordering::SeqCst);
        r
    });
    caught_up?;
    say("caught-up");
    let total = app.metrics().total();
    app.close()?;
    say(&format!(
        "done processed={} dropped={}",
        total.processed, total.dropped_records
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------

/// What `drive` does.
#[derive(Debug, Clone)]
pub(crate) struct DriveOptions {
    /// The suite's directory (the engine in `log`, state in `state`, app logs in `logs`).
    pub(crate) dir: PathBuf,
    /// Input records (views, clicks and 8 sentinels).
    pub(crate) records: usize,
    /// Times the app is killed before the final run.
    pub(crate) kills: usize,
    /// The guarantee the app runs with.
    pub(crate) guarantee: ProcessingGuarantee,
    /// Seeds the input and the kill times.
    pub(crate) seed: u64,
    /// Event time of the first view.
    pub(crate) start_ms: i64,
    /// A kill comes this long after the app starts, at least...
    pub(crate) kill_after_min: Duration,
    /// ... and at most.
    pub(crate) kill_after_max: Duration,
    /// How long the final run may take.
    pub(crate) final_timeout: Duration,
    /// `Some(n)`: serve the engine over the Kafka protocol and run `n` instances through
    /// librdkafka; `None`: one app process on the embedded engine.
    pub(crate) instances: Option<usize>,
    /// With `instances`: instead of killing an instance, stop it (`SIGSTOP`) this long,
    /// past its session timeout, then resume it (`SIGCONT`): a zombie whose tasks moved.
    pub(crate) pause_instead_of_kill: Option<Duration>,
}

impl DriveOptions {
    /// The defaults: 200 000 records, seed 1, kills 300 ms to 3 s after each start, 30
    /// minutes for the final run.
    pub(crate) fn new(dir: PathBuf, kills: usize, guarantee: ProcessingGuarantee) -> Self {
        Self {
            dir,
            records: DEFAULT_RECORDS,
            kills,
            guarantee,
            seed: 1,
            start_ms: default_start_ms(),
            kill_after_min: Duration::from_millis(300),
            kill_after_max: Duration::from_millis(3_000),
            final_timeout: Duration::from_secs(1_800),
            instances: None,
            pause_instead_of_kill: None,
        }
    }
}

/// Lost and duplicated results of one output topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OutputCheck {
    /// Records read (read_committed).
    pub(crate) records: usize,
    /// Results the input calls for that are missing or too small.
    pub(crate) lost: usize,
    /// Results repeated, too large, or not called for at all.
    pub(crate) duplicated: usize,
    /// Examples of what is wrong, for the report (at most a few).
    pub(crate) examples: Vec<String>,
}

impl OutputCheck {
    fn lose(&mut self, why: impl FnOnce() -> String) {
        self.lost += 1;
        self.example(why);
    }

    fn duplicate(&mut self, n: usize, why: impl FnOnce() -> String) {
        if n > 0 {
            self.duplicated += n;
            self.example(why);
        }
    }

    fn example(&mut self, why: impl FnOnce() -> String) {
        if self.examples.len() < 5 {
            self.examples.push(why());
        }
    }
}

/// When a kill came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillPoint {
    /// Before the app processed a record or found nothing to process (opening the engine,
    /// joining the group, restoring).
    Startup,
    /// While input was left to process.
    Processing,
    /// With nothing left to process (as last reported).
    Idle,
}

/// What a drive found.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// `embedded` (the app opens the engine) or `serve` (the engine over the Kafka
    /// protocol, the app through librdkafka).
    pub(crate) engine: &'static str,
    /// App instances run at once.
    pub(crate) instances: usize,
    /// The guarantee the app ran with.
    pub(crate) guarantee: ProcessingGuarantee,
    /// Kills done.
    pub(crate) kills: usize,
    /// Input records written.
    pub(crate) records_in: usize,
    /// Per output topic: what was checked.
    pub(crate) outputs: BTreeMap<&'static str, OutputCheck>,
    /// Per restart (after each kill, the final run included): time from the spawn to the
    /// first record processed (or to caught-up when there was nothing left), if it got
    /// that far before the next kill.
    pub(crate) recoveries: Vec<Duration>,
    /// Where each kill came.
    pub(crate) kill_points: Vec<KillPoint>,
    /// Instances paused and resumed instead of killed (zombies).
    pub(crate) pauses: usize,
    /// Output records a read_uncommitted reader sees and a read_committed one does not
    /// (records of aborted transactions).
    pub(crate) uncommitted_output_records: usize,
    /// Records the final run dropped as late. The input has none (see
    /// [`generate_events`]); a restart drops records when its restored stores are ahead of
    /// the committed input (at-least-once after a kill mid-processing).
    pub(crate) final_run_dropped: u64,
    /// How long the final run took.
    pub(crate) final_run: Duration,
}

impl Summary {
    /// The summary's leading fields, in order.
    pub(crate) const HEAD: [&'static str; 8] = [
        "engine",
        "guarantee",
        "kills",
        "records_in",
        "lost",
        "duplicated",
        "recovery_p50_ms",
        "recovery_p99_ms",
    ];

    /// Results lost over all outputs.
    pub(crate) fn lost(&self) -> usize {
        self.outputs.values().map(|c| c.lost).sum()
    }

    /// Results duplicated over all outputs.
    pub(crate) fn duplicated(&self) -> usize {
        self.outputs.values().map(|c| c.duplicated).sum()
    }

    /// Whether the run passes: nothing lost, and nothing duplicated under exactly-once.
    pub(crate) fn passed(&self) -> bool {
        self.lost() == 0
            && (self.guarantee == ProcessingGuarantee::AtLeastOnce || self.duplicated() == 0)
    }

    /// The recovery time at percentile `p` (nearest rank), in ms.
    pub(crate) fn recovery_ms(&self, p: f64) -> Option<u128> {
        let mut v: Vec<u128> = self.recoveries.iter().map(Duration::as_millis).collect();
        v.sort_unstable();
        if v.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v.get(rank.clamp(1, v.len()) - 1).copied()
    }

    /// The one-line JSON summary.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let count = |k: KillPoint| self.kill_points.iter().filter(|p| **p == k).count();
        let outputs: serde_json::Map<String, serde_json::Value> = self
            .outputs
            .iter()
            .map(|(t, c)| {
                (
                    (*t).to_string(),
                    serde_json::json!({
                        "records": c.records,
                        "lost": c.lost,
                        "duplicated": c.duplicated,
                        "examples": c.examples,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "engine": self.engine,
            "instances": self.instances,
            "pauses": self.pauses,
            "guarantee": self.guarantee.as_str(),
            "kills": self.kills,
            "records_in": self.records_in,
            "lost": self.lost(),
            "duplicated": self.duplicated(),
            "recovery_p50_ms": self.recovery_ms(50.0),
            "recovery_p99_ms": self.recovery_ms(99.0),
            "recoveries_measured": self.recoveries.len(),
            "kills_at_startup": count(KillPoint::Startup),
            "kills_while_processing": count(KillPoint::Processing),
            "kills_when_idle": count(KillPoint::Idle),
            "uncommitted_output_records": self.uncommitted_output_records,
            "final_run_ms": self.final_run.as_millis(),
            "final_run_dropped": self.final_run_dropped,
            "outputs": outputs,
        })
    }
}

impl fmt::Display for Summary {
    /// The one-line JSON summary, the fields of [`Summary::HEAD`] first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = self.to_json();
        let mut parts: Vec<String> = Self::HEAD
            .iter()
            .map(|k| format!("\"{k}\":{}", json[*k]))
            .collect();
        if let Some(all) = json.as_object() {
            for (k, v) in all {
                if !Self::HEAD.contains(&k.as_str()) {
                    parts.push(format!("{}:{v}", serde_json::Value::from(k.as_str())));
                }
            }
        }
        write!(f, "{{{}}}", parts.join(","))
    }
}

/// The lines a child printed, with when (since its spawn).
type Lines = Arc<Mutex<Vec<(Duration, String)>>>;

/// One run of the app as a child process.
struct Run {
    child: std::process::Child,
    spawned: Instant,
    lines: Lines,
    reader: Option<std::thread::JoinHandle<()>>,
    log: PathBuf,
}

impl Run {
    /// Spawns `command` with stdout piped to a line collector and stderr to `log`.
    fn spawn(mut command: Command, log: PathBuf) -> Result<Self, SuiteError> {
        let err = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(io("starting the app"))?;
        let lines: Lines = Arc::default();
        let reader = child.stdout.take().map(|out| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    // Anywhere in the line: a test harness may print before it.
                    if let Some((_, rest)) = line.split_once(MARK) {
                        let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
                        l.push((spawned.elapsed(), rest.trim().to_string()));
                    }
                }
            })
        });
        Ok(Self {
            child,
            spawned,
            lines,
            reader,
            log,
        })
    }

    /// Waits for the child to exit, up to `until`; `None` if it still runs then.
    fn wait_until(&mut self, until: Instant) -> Result<Option<ExitStatus>, SuiteError> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(io("waiting for the app"))? {
                return Ok(Some(status));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            std::thread::sleep((until - now).min(Duration::from_millis(10)));
        }
    }

    /// SIGKILLs the child and reaps it, then collects its lines.
    fn kill(mut self) -> Result<Vec<(Duration, String)>, SuiteError> {
        self.child.kill().map_err(io("killing the app"))?;
        self.child.wait().map_err(io("reaping the app"))?;
        Ok(self.finish())
    }

    /// Joins the line reader (the child has exited) and returns the lines.
    fn finish(mut self) -> Vec<(Duration, String)> {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The last lines of the child's stderr, for an error message.
    fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Run {
    /// A child still running when the driver gives up (on an error) is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(15);
    format!(
        "{} (last lines of {}):\n{}",
        if lines.is_empty() { "no log" } else { "log" },
        path.display(),
        lines[from..].join("\n")
    )
}

/// Time to the first progress in a run's lines: its first record processed, or running
/// with nothing to process.
fn recovery(lines: &[(Duration, String)]) -> Option<Duration> {
    lines
        .iter()
        .find(|(_, l)| l == "processing" || l == "idle" || l == "caught-up")
        .map(|(t, _)| *t)
}

/// Where a kill came, from the lines the run printed.
fn kill_point(lines: &[(Duration, String)]) -> KillPoint {
    if recovery(lines).is_none() {
        return KillPoint::Startup;
    }
    let lag = lines.iter().rev().find_map(|(_, l)| {
        l.split_once(" lag=")
            .and_then(|(_, v)| v.parse::<i64>().ok())
    });
    match lag {
        Some(0) => KillPoint::Idle,
        _ => KillPoint::Processing,
    }
}

/// The app's arguments for a run.
fn app_args(
    dir: &Path,
    guarantee: ProcessingGuarantee,
    exit_when_done: bool,
    kafka: Option<&KafkaTarget>,
) -> Vec<String> {
    let mut args = vec![
        "app".to_string(),
        "--dir".to_string(),
        dir.display().to_string(),
        "--guarantee".to_string(),
        guarantee.as_str().to_string(),
    ];
    if let Some(k) = kafka {
        args.extend([
            "--bootstrap-servers".to_string(),
            k.bootstrap.clone(),
            "--instance".to_string(),
            k.instance.to_string(),
        ]);
    }
    if exit_when_done {
        args.push("--exit-when-done".to_string());
    }
    args
}

/// Generates the input, kills the app `kills` times at seeded random moments, runs it to
/// the end once more and checks every output. `app_command` makes the command that runs
/// the app with the given arguments (this binary's `app` subcommand, or a test's child).
///
/// With `opts.instances` set, the engine is served over the Kafka protocol (`streams
/// serve`, in this process) and that many app instances run as one group through
/// librdkafka; each kill hits one of them at random, which is restarted at once.
pub(crate) fn drive(
    opts: &DriveOptions,
    app_command: &dyn Fn(&[String]) -> Command,
) -> Result<Summary, SuiteError> {
    let logs = opts.dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(format!("creating {}", logs.display())))?;
    let events = generate_events(opts.records, opts.seed, opts.start_ms);
    generate(&opts.dir, &events)?;
    let mut rng = SplitMix::new(opts.seed ^ 0x6b69_6c6c);
    let mut kills = Kills::default();
    let (engine, final_run, lines) = match opts.instances {
        None => {
            for i in 0..opts.kills {
                let after = kills.after(opts, &mut rng);
                let mut run = Run::spawn(
                    app_command(&app_args(&opts.dir, opts.guarantee, false, None)),
                    logs.join(format!("run-{i:03}.log")),
                )?;
                if let Some(status) = run.wait_until(run.spawned + after)? {
                    let tail = run.log_tail();
                    return Err(SuiteError::Child(format!(
                        "run {i} exited by itself ({status}) before its kill\n{tail}"
                    )));
                }
                kills.record(opts, after, None, i > 0, run.kill()?);
            }
            let (final_run, lines) = final_run(
                opts,
                app_command(&app_args(&opts.dir, opts.guarantee, true, None)),
                logs.join("final.log"),
            )?;
            (
                Arc::new(LogEngine::open(&opts.dir.join("log"))?),
                final_run,
                lines,
            )
        }
        Some(instances) => {
            let engine = Arc::new(LogEngine::open(&opts.dir.join("log"))?);
            let server = streams_state::serve::Server::start(engine.clone(), "127.0.0.1:0")?;
            let target = |instance| KafkaTarget {
                bootstrap: server.bootstrap_servers(),
                instance,
            };
            let spawn = |instance: usize, n: usize| {
                Run::spawn(
                    app_command(&app_args(
                        &opts.dir,
                        opts.guarantee,
                        false,
                        Some(&target(instance)),
                    )),
                    logs.join(format!("instance-{instance}-run-{n:03}.log")),
                )
            };
            let mut runs = Vec::with_capacity(instances);
            for instance in 0..instances.max(1) {
                runs.push((spawn(instance, 0)?, 0));
            }
            for _ in 0..opts.kills {
                let after = kills.after(opts, &mut rng);
                let victim = rng.below(runs.len() as u64) as usize;
                std::thread::sleep(after);
                for (instance, (run, _)) in runs.iter_mut().enumerate() {
                    if let Some(status) = run.child.try_wait().map_err(io("waiting for the app"))? {
                        let tail = run.log_tail();
                        return Err(SuiteError::Child(format!(
                            "instance {instance} exited by itself ({status})\n{tail}"
                        )));
                    }
                }
                if let Some(pause) = opts.pause_instead_of_kill {
                    // A zombie: stopped past its session (and transaction) timeout while
                    // the group moves its tasks, then resumed.
                    let pid = runs[victim].0.child.id();
                    signal(pid, "STOP")?;
                    std::thread::sleep(pause);
                    signal(pid, "CONT")?;
                    kills.pauses += 1;
                    eprintln!(
                        "fault_suite: paused instance {victim} for {} ms, {} ms after the previous event",
                        pause.as_millis(),
                        after.as_millis()
                    );
                    continue;
                }
                let n = runs[victim].1 + 1;
                let (old, first) = std::mem::replace(&mut runs[victim], (spawn(victim, n)?, n));
                kills.record(opts, after, Some(victim), first > 0, old.kill()?);
            }
            // The last runs are killed too; one instance then runs to the end alone.
            for (run, n) in runs {
                let lines = run.kill()?;
                if n > 0
                    && let Some(t) = recovery(&lines)
                {
                    kills.recoveries.push(t);
                }
            }
            let (final_run, lines) = final_run(
                opts,
                app_command(&app_args(&opts.dir, opts.guarantee, true, Some(&target(0)))),
                logs.join("final.log"),
            )?;
            server.shutdown();
            (engine, final_run, lines)
        }
    };
    if opts.kills > 0
        && let Some(t) = recovery(&lines)
    {
        kills.recoveries.push(t);
    }
    let final_run_dropped = lines
        .iter()
        .find_map(|(_, l)| {
            l.strip_prefix("done ")
                .and_then(|r| r.split_once("dropped="))
                .and_then(|(_, d)| d.parse::<u64>().ok())
        })
        .unwrap_or(0);
    eprintln!(
        "fault_suite: final run {} ms; checking the outputs",
        final_run.as_millis()
    );

    let mut outputs = BTreeMap::new();
    let mut uncommitted_output_records = 0;
    for topic in OUTPUTS {
        let mut records = Vec::new();
        let mut visible_uncommitted = 0;
        for p in 0..PARTITIONS {
            let part = read_output(&engine, topic, p)?;
            visible_uncommitted += read_partition(&engine, topic, p, Isolation::ReadUncommitted)?
                .len()
                .saturating_sub(part.len());
            records.extend(decode(topic, part)?);
        }
        uncommitted_output_records += visible_uncommitted;
        let check = match topic {
            PAGE_COUNTS => check_page_counts(&events, &records),
            WINDOW_COUNTS => check_window_counts(&events, &records),
            _ => check_joined(&events, &records),
        };
        outputs.insert(topic, check);
    }
    Ok(Summary {
        engine: if opts.instances.is_some() {
            "serve"
        } else {
            "embedded"
        },
        instances: opts.instances.unwrap_or(1),
        guarantee: opts.guarantee,
        kills: kills.done,
        records_in: events.values().map(Vec::len).sum(),
        outputs,
        recoveries: kills.recoveries,
        kill_points: kills.points,
        pauses: kills.pauses,
        uncommitted_output_records,
        final_run_dropped,
        final_run,
    })
}

/// Sends `SIGSTOP` or `SIGCONT` (`signal`) to process `pid` (with `kill(1)`).
fn signal(pid: u32, signal: &str) -> Result<(), SuiteError> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map_err(io(format!("sending SIG{signal} to {pid}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(SuiteError::Child(format!(
            "kill -{signal} {pid} failed ({status})"
        )))
    }
}

/// What the kills of a drive found.
#[derive(Default)]
struct Kills {
    done: usize,
    pauses: usize,
    recoveries: Vec<Duration>,
    points: Vec<KillPoint>,
}

impl Kills {
    /// How long until the next kill (seeded).
    fn after(&self, opts: &DriveOptions, rng: &mut SplitMix) -> Duration {
        let (min, max) = (
            opts.kill_after_min.as_millis() as u64,
            opts.kill_after_max.as_millis() as u64,
        );
        Duration::from_millis(min + rng.below(max.saturating_sub(min) + 1))
    }

    /// Records a kill of a run that printed `lines` (`restarted`: the run followed a kill,
    /// so its time to first progress is a recovery).
    fn record(
        &mut self,
        opts: &DriveOptions,
        after: Duration,
        instance: Option<usize>,
        restarted: bool,
        lines: Vec<(Duration, String)>,
    ) {
        self.done += 1;
        if restarted && let Some(t) = recovery(&lines) {
            self.recoveries.push(t);
        }
        let point = kill_point(&lines);
        eprintln!(
            "fault_suite: kill {}/{}{} after {} ms ({point:?}); time to first progress {}",
            self.done,
            opts.kills,
            instance.map_or(String::new(), |i| format!(" of instance {i}")),
            after.as_millis(),
            recovery(&lines).map_or("-".to_string(), |t| format!("{} ms", t.as_millis()))
        );
        self.points.push(point);
    }
}

/// Runs the app to the end (`command` has `--exit-when-done`); its duration and lines.
fn final_run(
    opts: &DriveOptions,
    command: Command,
    log: PathBuf,
) -> Result<(Duration, Vec<(Duration, String)>), SuiteError> {
    let mut run = Run::spawn(command, log)?;
    let status = run.wait_until(run.spawned + opts.final_timeout)?;
    let took = run.spawned.elapsed();
    let tail = run.log_tail();
    match status {
        Some(s) if s.success() => Ok((took, run.finish())),
        Some(s) => Err(SuiteError::Child(format!(
            "the final run failed ({s})\n{tail}"
        ))),
        None => {
            let _ = run.kill();
            Err(SuiteError::Child(format!(
                "the final run did not finish within {:?}\n{tail}",
                opts.final_timeout
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading and checking the outputs
// ---------------------------------------------------------------------------------------

/// ISOLATION SWITCH. Reads one output partition whole, as the check sees it: as a
/// `read_committed` consumer does (what exactly-once promises). To check what a
/// `read_uncommitted` consumer sees instead (records of aborted transactions included),
/// change this one line to `Isolation::ReadUncommitted`. At-least-once writes no
/// transactions, so both read the same there.
fn read_output(
    engine: &LogEngine,
    topic: &str,
    partition: u32,
) -> Result<Vec<LogRecord>, SuiteError> {
    read_partition(engine, topic, partition, Isolation::ReadCommitted)
}

/// Every record of a partition a reader with `isolation` sees, in offset order.
fn read_partition(
    engine: &LogEngine,
    topic: &str,
    partition: u32,
    isolation: Isolation,
) -> Result<Vec<LogRecord>, SuiteError> {
    let upper = match isolation {
        Isolation::ReadCommitted => engine.last_stable_offset(topic, partition)?,
        Isolation::ReadUncommitted => engine.offsets(topic, partition)?.1,
    };
    let mut out = Vec::new();
    let mut offset = engine.offsets(topic, partition)?.0;
    while offset < upper {
        let r = engine.read_with(topic, partition, offset, 4 << 20, isolation)?;
        if r.next_offset <= offset {
            return Err(SuiteError::Output(format!(
                "{topic}/{partition}: reading at {offset} made no progress"
            )));
        }
        out.extend(r.records);
        offset = r.next_offset;
    }
    Ok(out)
}

/// Key and value of each record as UTF-8 text (the app writes strings).
fn decode(topic: &str, records: Vec<LogRecord>) -> Result<Vec<(String, String)>, SuiteError> {
    records
        .into_iter()
        .map(|r| {
            let text = |b: Option<Vec<u8>>, what: &str| {
                b.and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| {
                    SuiteError::Output(format!(
                        "{topic} offset {}: {what} is not UTF-8 text",
                        r.offset
                    ))
                })
            };
            Ok((text(r.key.clone(), "key")?, text(r.value.clone(), "value")?))
        })
        .collect()
}

/// Every input record.
fn all_events<'a>(
    events: &'a BTreeMap<(&'static str, u32), Vec<Event>>,
) -> impl Iterator<Item = &'a Event> {
    events.values().flatten()
}

fn parse_count(topic: &str, key: &str, v: &str) -> i64 {
    // A value that is no count is never right: -1 matches nothing.
    v.parse().unwrap_or_else(|_| {
        eprintln!("fault_suite: {topic} {key}: value {v:?} is not a count");
        -1
    })
}

/// `fs-page-counts`: per page, the counts must rise strictly and end at the number of
/// views of the page. A count not above the previous one is a duplicate, a last count
/// above the true one too (input counted twice); a missing or smaller last count is lost.
pub(crate) fn check_page_counts(
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
    records: &[(String, String)],
) -> OutputCheck {
    let mut want: HashMap<&str, i64> = HashMap::new();
    for e in all_events(events).filter(|e| e.topic == VIEWS) {
        *want.entry(e.page()).or_default() += 1;
    }
    let mut got: HashMap<&str, Vec<i64>> = HashMap::new();
    for (k, v) in records {
        got.entry(k.as_str())
            .or_default()
            .push(parse_count(PAGE_COUNTS, k, v));
    }
    let mut c = OutputCheck {
        records: records.len(),
        ..OutputCheck::default()
    };
    let mut pages: Vec<&&str> = want.keys().collect();
    pages.sort();
    for page in pages {
        let n = want[*page];
        let seq = got.get(*page).map_or(&[][..], Vec::as_slice);
        let repeats = seq.windows(2).filter(|w| w[1] <= w[0]).count();
        c.duplicate(repeats, || {
            format!("{page}: {repeats} counts not above the previous one")
        });
        match seq.last() {
            None => c.lose(|| format!("{page}: no count (want {n})")),
            Some(&last) if last < n => c.lose(|| format!("{page}: last count {last}, want {n}")),
            Some(&last) if last > n => {
                c.duplicate(1, || format!("{page}: last count {last}, want {n}"));
            }
            Some(_) => {}
        }
    }
    for (page, seq) in &got {
        if !want.contains_key(page) {
            c.duplicate(seq.len(), || format!("{page}: counted but never viewed"));
        }
    }
    c
}

/// `fs-window-counts`: exactly one record per (user, closed window) with the number of the
/// user's views in it. A missing window or a smaller count is lost; a second record, a
/// larger count, or a window that should not be there is duplicated.
pub(crate) fn check_window_counts(
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
    records: &[(String, String)],
) -> OutputCheck {
    // A window closes once the stream time of its task (the views and clicks partitions of
    // the user's partition number) reaches its end plus the grace.
    let mut stream_end: HashMap<u32, i64> = HashMap::new();
    for ((_, p), list) in events {
        for e in list {
            let t = stream_end.entry(*p).or_insert(i64::MIN);
            *t = (*t).max(e.ts);
        }
    }
    let mut want: HashMap<String, i64> = HashMap::new();
    for ((topic, p), list) in events {
        if *topic != VIEWS {
            continue;
        }
        for e in list {
            let start = e.ts - e.ts.rem_euclid(WINDOW_MS);
            if start + WINDOW_MS + WINDOW_GRACE_MS <= stream_end[p] {
                *want.entry(format!("{}@{start}", e.user)).or_default() += 1;
            }
        }
    }
    let mut got: HashMap<&str, Vec<i64>> = HashMap::new();
    for (k, v) in records {
        got.entry(k.as_str())
            .or_default()
            .push(parse_count(WINDOW_COUNTS, k, v));
    }
    let mut c = OutputCheck {
        records: records.len(),
        ..OutputCheck::default()
    };
    let mut keys: Vec<&String> = want.keys().collect();
    keys.sort();
    for key in keys {
        let n = want[key];
        let seq = got.get(key.as_str()).map_or(&[][..], Vec::as_slice);
        if seq.is_empty() {
            c.lose(|| format!("{key}: no final count (want {n})"));
            continue;
        }
        let extra = seq.len() - 1;
        c.duplicate(extra, || {
            format!("{key}: {} final counts {seq:?}", seq.len())
        });
        if seq.iter().all(|&x| x < n) {
            c.lose(|| format!("{key}: count {seq:?}, want {n}"));
        } else if seq.iter().any(|&x| x > n) {
            c.duplicate(1, || format!("{key}: count {seq:?}, want {n}"));
        }
    }
    for (key, seq) in &got {
        if !want.contains_key(*key) {
            c.duplicate(seq.len(), || {
                format!("{key}: {seq:?} for a window with no views or still open")
            });
        }
    }
    c
}

/// `fs-joined`: every (view, click) of one user at most [`JOIN_MS`] apart exactly once
/// (nested loops per user); a missing pair is lost, a repeated or unknown one duplicated.
pub(crate) fn check_joined(
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
    records: &[(String, String)],
) -> OutputCheck {
    let mut by_user: HashMap<&str, (Vec<&Event>, Vec<&Event>)> = HashMap::new();
    for e in all_events(events) {
        let entry = by_user.entry(e.user.as_str()).or_default();
        if e.topic == VIEWS {
            entry.0.push(e);
        } else {
            entry.1.push(e);
        }
    }
    let mut want: HashMap<(String, String), usize> = HashMap::new();
    for (user, (views, clicks)) in &by_user {
        for v in views {
            for k in clicks {
                if (v.ts - k.ts).abs() <= JOIN_MS {
                    want.insert(((*user).to_string(), format!("{}|{}", v.value, k.value)), 0);
                }
            }
        }
    }
    let mut c = OutputCheck {
        records: records.len(),
        ..OutputCheck::default()
    };
    let mut unknown = 0;
    for (k, v) in records {
        match want.get_mut(&(k.clone(), v.clone())) {
            Some(n) => *n += 1,
            None => {
                unknown += 1;
                c.example(|| format!("{k}: {v} is no pair of the input"));
            }
        }
    }
    c.duplicated += unknown;
    let mut pairs: Vec<(&(String, String), &usize)> = want.iter().collect();
    pairs.sort();
    for ((user, pair), n) in pairs {
        match *n {
            0 => c.lose(|| format!("{user}: {pair} missing")),
            1 => {}
            n => c.duplicate(n - 1, || format!("{user}: {pair} {n} times")),
        }
    }
    c
}

// ---------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------

const USAGE: &str = "\
fault_suite: the exactly-once fault suite (docs/RELIABILITY.md)

USAGE:
  fault_suite generate --dir D [--records N] [--seed S] [--start-ms MS]
      write the deterministic input (N >= 200000, default 200000) into the engine at D/log
  fault_suite app --dir D --guarantee at_least_once|exactly_once_v2 [--exit-when-done]
                  [--bootstrap-servers HOST:PORT [--instance I]]
      run one app instance on D/log (state in D/state), or on a Kafka-protocol broker
      (state in D/state-I); with --exit-when-done exit 0 once all input is processed and
      committed, after a clean close
  fault_suite drive --dir D --kills K --guarantee G [--seed S] [--records N]
                    [--start-ms MS] [--kill-min-ms A] [--kill-max-ms B]
                    [--final-timeout-secs T] [--instances N [--pause-ms P]]
      generate, SIGKILL the app K times A..B ms (default 300..3000, seeded) after each
      start, run it to the end, check every output; prints one JSON line; exits 1 on a
      lost result, or a duplicated one under exactly_once_v2. With --instances N the
      engine is served over the Kafka protocol (streams serve, in the driver) and N app
      instances run as one group through librdkafka: each kill hits one at random, A..B ms
      after the previous kill, and it is restarted at once; at the end all are killed and
      one runs to the end alone. With --pause-ms P an instance is not killed but stopped
      (SIGSTOP) for P ms, past its session timeout, and resumed: a zombie
";

/// Flags of a subcommand.
struct Flags {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    fn parse(args: &[String], switches: &[&str]) -> Result<Self, SuiteError> {
        let mut values = HashMap::new();
        let mut found = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if switches.contains(&a.as_str()) {
                found.push(a.clone());
            } else if a.starts_with("--") {
                let v = it
                    .next()
                    .ok_or_else(|| SuiteError::Usage(format!("{a} needs a value\n\n{USAGE}")))?;
                values.insert(a.clone(), v.clone());
            } else {
                return Err(SuiteError::Usage(format!("unexpected {a:?}\n\n{USAGE}")));
            }
        }
        Ok(Self {
            values,
            switches: found,
        })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    fn required(&mut self, name: &str) -> Result<String, SuiteError> {
        self.take(name)
            .ok_or_else(|| SuiteError::Usage(format!("{name} is required\n\n{USAGE}")))
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, SuiteError> {
        self.take(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| SuiteError::Usage(format!("{name} {v}: not a number")))
            })
            .transpose()
    }

    fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// Fails on a flag nobody took.
    fn done(self) -> Result<(), SuiteError> {
        match self.values.keys().next() {
            Some(k) => Err(SuiteError::Usage(format!("unknown flag {k}\n\n{USAGE}"))),
            None => Ok(()),
        }
    }
}

fn records_flag(flags: &mut Flags) -> Result<usize, SuiteError> {
    let n = flags.number("--records")?.unwrap_or(DEFAULT_RECORDS);
    if n < DEFAULT_RECORDS {
        return Err(SuiteError::Usage(format!(
            "--records {n}: at least {DEFAULT_RECORDS}"
        )));
    }
    Ok(n)
}

/// Runs a command line (without the program name); returns the process exit code.
pub(crate) fn run_cli(args: &[String]) -> Result<i32, SuiteError> {
    let Some((command, rest)) = args.split_first() else {
        return Err(SuiteError::Usage(USAGE.to_string()));
    };
    match command.as_str() {
        "generate" => {
            let mut f = Flags::parse(rest, &[])?;
            let dir = PathBuf::from(f.required("--dir")?);
            let records = records_flag(&mut f)?;
            let seed = f.number("--seed")?.unwrap_or(1);
            let start_ms = f.number("--start-ms")?.unwrap_or_else(default_start_ms);
            f.done()?;
            let events = generate_events(records, seed, start_ms);
            generate(&dir, &events)?;
            println!(
                "{} records written to {}",
                events.values().map(Vec::len).sum::<usize>(),
                dir.join("log").display()
            );
            Ok(0)
        }
        "app" => {
            let mut f = Flags::parse(rest, &["--exit-when-done"])?;
            let dir = PathBuf::from(f.required("--dir")?);
            let guarantee = parse_guarantee(&f.required("--guarantee")?)?;
            let exit_when_done = f.has("--exit-when-done");
            let kafka = match f.take("--bootstrap-servers") {
                Some(bootstrap) => Some(KafkaTarget {
                    bootstrap,
                    instance: f.number("--instance")?.unwrap_or(0),
                }),
                None => None,
            };
            f.done()?;
            run_app(&dir, guarantee, exit_when_done, kafka.as_ref())?;
            Ok(0)
        }
        "drive" => {
            let mut f = Flags::parse(rest, &[])?;
            let dir = PathBuf::from(f.required("--dir")?);
            let kills = f
                .number("--kills")?
                .ok_or_else(|| SuiteError::Usage(format!("--kills is required\n\n{USAGE}")))?;
            let guarantee = parse_guarantee(&f.required("--guarantee")?)?;
            let mut opts = DriveOptions::new(dir, kills, guarantee);
            opts.records = records_flag(&mut f)?;
            if let Some(seed) = f.number("--seed")? {
                opts.seed = seed;
            }
            if let Some(start) = f.number("--start-ms")? {
                opts.start_ms = start;
            }
            if let Some(ms) = f.number("--kill-min-ms")? {
                opts.kill_after_min = Duration::from_millis(ms);
            }
            if let Some(ms) = f.number("--kill-max-ms")? {
                opts.kill_after_max = Duration::from_millis(ms);
            }
            if opts.kill_after_max < opts.kill_after_min {
                return Err(SuiteError::Usage(
                    "--kill-max-ms is below --kill-min-ms".to_string(),
                ));
            }
            if let Some(t) = f.number("--final-timeout-secs")? {
                opts.final_timeout = Duration::from_secs(t);
            }
            opts.instances = f.number("--instances")?;
            opts.pause_instead_of_kill = f.number("--pause-ms")?.map(Duration::from_millis);
            if opts.pause_instead_of_kill.is_some() && opts.instances.is_none() {
                return Err(SuiteError::Usage(
                    "--pause-ms needs --instances".to_string(),
                ));
            }
            if opts.instances == Some(0) {
                return Err(SuiteError::Usage("--instances 0: at least 1".to_string()));
            }
            f.done()?;
            let exe = std::env::current_exe().map_err(io("finding this program"))?;
            let summary = drive(&opts, &|args| {
                let mut c = Command::new(&exe);
                c.args(args);
                c
            })?;
            println!("{summary}");
            Ok(if summary.passed() { 0 } else { 1 })
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(SuiteError::Usage(format!(
            "unknown command {other:?}\n\n{USAGE}"
        ))),
    }
}

/// Logs (`RUST_LOG`, default `warn`) to stderr.
pub(crate) fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn main() {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_cli(&args) {
        Ok(code) => std::process::exit(code),
        Err(SuiteError::Usage(m)) => {
            eprintln!("{m}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("fault_suite: {e}");
            std::process::exit(1);
        }
    }
}
