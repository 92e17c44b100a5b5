//! Property tests of event-time order and final results (KIP-695 `max.task.idle.ms`,
//! `suppress(until_window_closes)`), each checked against plain reference code in this file
//! (sorting, maps, a step-by-step simulation), never against the framework's own output.
//!
//! The topology: two co-partitioned input topics, `left` and `right`, merged, grouped by key
//! and counted in tumbling windows with a grace period. Every update goes to `updates`, the
//! final result of each window (suppressed until it closes) to `finals`, and records too
//! late for their window to `late`. Left timestamps are even and right ones odd, so no two
//! records of a task's two partitions ever tie.
//!
//! - **Test driver** (random partition counts, keys, timestamps, batch boundaries, commits,
//!   wall-clock advances, record cache on/off, store engine, `max.task.idle.ms` -1, 0 or
//!   above 0): the reference simulates, per task, the order SEMANTICS.md ("Time") gives the
//!   driver: a batch is queued at once and every partition counts as caught up; the task
//!   takes the smaller head timestamp of its two queues; with one queue empty it goes on at
//!   once with `max.task.idle.ms` -1 or 0 (0 counts enforced processing), and with a
//!   positive value only once the wall clock reached the time the queue was first seen empty
//!   plus that value. Stream time is the task's largest processed timestamp and a record is
//!   dropped when its window's `end + grace <= stream time`. Checked: `finals` holds exactly
//!   the windows with `end + grace <=` their task's final stream time, once each, with the
//!   reference count and the largest timestamp of the counted records; the last update of
//!   every window is the reference count (with the cache off, updates are 1, 2, ..., count);
//!   the late records, `dropped_records`, `enforced_processing` and `processed` match.
//! - **Runtime on the embedded engine** (random partitions, threads, record cache, store
//!   engine, `buffered.records.per.partition`, commit interval, poll time,
//!   `max.task.idle.ms` 0 or above, `consumer.max.poll.records` and
//!   `consumer.max.partition.fetch.bytes` so that one poll fetches only part of the log,
//!   and an optional clean restart midway): all input is in the log before the app
//!   starts, and each topic partition is in non-decreasing timestamp order, so a task that
//!   processes in timestamp order across its partitions never sees a late record (grace 0).
//!   Checked: no late record and `dropped_records` 0; `finals` holds exactly one record per
//!   window closed by its task's largest timestamp, equal to the plain count of the records
//!   in it; the last update of every window is that count.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use streams_core::config::{ClientPrefix, DslStore};
use streams_core::dsl::{BufferConfig, Suppressed};
use streams_core::metrics::TaskMetrics;
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
use streams_core::window::TimeWindows;
use streams_tests::driver;

const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
const TOPICS: [&str; 2] = ["left", "right"];

fn ms(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap())
}

/// The topology under test (see the module docs).
fn topology(size: i64, grace: i64) -> Topology {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>(TOPICS[0]);
    let right = builder.stream::<String, String>(TOPICS[1]);
    let counts = left
        .merge(&right)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(size), ms(grace)))
        .late_records_to("late", Produced::new())
        .count_with(Materialized::as_("counts"));
    counts
        .to_stream()
        .map(|w, n| (w.to_string(), n.unwrap_or(-1)))
        .to("updates");
    counts
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final"))
        .to_stream()
        .map(|w, n| (w.to_string(), n.unwrap_or(-1)))
        .to("finals");
    builder.build().unwrap()
}

/// A window as the topology prints it: `[key@start/end]`.
fn window_name(key: &str, start: i64, size: i64) -> String {
    format!("[{key}@{start}/{}]", start + size)
}

/// A window of the reference: the task counting it, its end, how many records it counts
/// and their largest timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RefWindow {
    task: usize,
    end: i64,
    count: i64,
    max_ts: i64,
}

/// Windowed counts computed by hand from records in the order a task processes them.
#[derive(Debug)]
struct Counts {
    size: i64,
    grace: i64,
    /// Per task: the largest timestamp processed (-1: none).
    stream_time: Vec<i64>,
    windows: BTreeMap<String, RefWindow>,
    /// Records dropped as late: (key, timestamp), in processing order.
    late: Vec<(String, i64)>,
    processed: u64,
}

impl Counts {
    fn new(tasks: usize, size: i64, grace: i64) -> Self {
        Self {
            size,
            grace,
            stream_time: vec![-1; tasks],
            windows: BTreeMap::new(),
            late: Vec::new(),
            processed: 0,
        }
    }

    fn process(&mut self, task: usize, key: &str, ts: i64) {
        self.processed += 1;
        let st = &mut self.stream_time[task];
        *st = (*st).max(ts);
        let start = ts - ts.rem_euclid(self.size);
        let end = start + self.size;
        if end + self.grace <= *st {
            self.late.push((key.to_string(), ts));
            return;
        }
        let w = self
            .windows
            .entry(window_name(key, start, self.size))
            .or_insert(RefWindow {
                task,
                end,
                count: 0,
                max_ts: ts,
            });
        w.count += 1;
        w.max_ts = w.max_ts.max(ts);
    }

    /// The windows closed by their task's stream time: (count, largest timestamp).
    fn closed(&self) -> BTreeMap<String, (i64, i64)> {
        self.windows
            .iter()
            .filter(|(_, w)| w.end + self.grace <= self.stream_time[w.task])
            .map(|(k, w)| (k.clone(), (w.count, w.max_ts)))
            .collect()
    }

    fn all(&self) -> BTreeMap<String, i64> {
        self.windows
            .iter()
            .map(|(k, w)| (k.clone(), w.count))
            .collect()
    }
}

/// The last value per key.
fn last_values(records: &[(String, i64)]) -> BTreeMap<String, i64> {
    records.iter().cloned().collect()
}

// ---------------------------------------------------------------------------------------
// A. The test driver.
// ---------------------------------------------------------------------------------------

/// `max.task.idle.ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// -1: never wait.
    Never,
    /// 0: do not wait for a caught-up partition (every partition is, in the driver).
    Zero,
    /// > 0: wait that long (wall clock) for an empty partition.
    Wait(i64),
}

impl Idle {
    fn ms(self) -> i64 {
        match self {
            Idle::Never => -1,
            Idle::Zero => 0,
            Idle::Wait(ms) => ms,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// One `pipe_records` call into `TOPICS[topic]`: (key index, timestamp) pairs.
    Pipe {
        topic: usize,
        records: Vec<(usize, i64)>,
    },
    /// `driver.commit()`.
    Commit,
    /// `driver.advance_wall_clock_time(ms)`.
    Advance(i64),
}

#[derive(Debug, Clone)]
struct DriverCase {
    partitions: u32,
    size: i64,
    grace: i64,
    cache: bool,
    store: DslStore,
    idle: Idle,
    ops: Vec<Op>,
}

fn op() -> impl Strategy<Value = Op> {
    let pipe = (
        0usize..2,
        vec((0..KEYS.len(), 0i64..100), 1..12),
        any::<bool>(),
    )
        .prop_map(|(topic, recs, sorted)| {
            // Left even, right odd: no ties between a task's two partitions.
            let mut records: Vec<(usize, i64)> = recs
                .into_iter()
                .map(|(k, x)| (k, 2 * x + topic as i64))
                .collect();
            // Half the batches in timestamp order: fewer late records, more windows that
            // close with updates still in the record cache.
            if sorted {
                records.sort_by_key(|r| r.1);
            }
            Op::Pipe { topic, records }
        });
    prop_oneof![
        6 => pipe,
        1 => Just(Op::Commit),
        1 => (0i64..60).prop_map(Op::Advance),
    ]
}

fn driver_case() -> impl Strategy<Value = DriverCase> {
    (
        1u32..=4,
        select(vec![10i64, 20, 30, 50]),
        prop_oneof![Just(0i64), 0i64..=40],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(Idle::Never),
            Just(Idle::Zero),
            (1i64..50).prop_map(Idle::Wait)
        ],
        vec(op(), 0..16),
    )
        .prop_map(
            |(partitions, size, grace, cache, in_memory, idle, ops)| DriverCase {
                partitions,
                size,
                grace,
                cache,
                store: if in_memory {
                    DslStore::InMemory
                } else {
                    DslStore::RocksDb
                },
                idle,
                ops,
            },
        )
}

/// The reference for the driver: per task, its two input queues and when each was first
/// seen empty; the driver's processing order simulated step by step.
struct DriverModel {
    idle: Idle,
    now: i64,
    partitions: u32,
    /// Per task, per topic: queued (key index, timestamp).
    queues: Vec<[VecDeque<(usize, i64)>; 2]>,
    /// Per task, per topic: the wall-clock time the queue was first seen empty.
    empty_since: Vec<[Option<i64>; 2]>,
    enforced: u64,
    counts: Counts,
}

impl DriverModel {
    fn new(case: &DriverCase) -> Self {
        let n = case.partitions as usize;
        let mut model = Self {
            idle: case.idle,
            now: 0,
            partitions: case.partitions,
            queues: vec![[VecDeque::new(), VecDeque::new()]; n],
            empty_since: vec![[None, None]; n],
            enforced: 0,
            counts: Counts::new(n, case.size, case.grace),
        };
        // Building the driver processes (nothing) once.
        model.run();
        model
    }

    fn pipe(&mut self, topic: usize, records: &[(usize, i64)]) {
        for &(k, ts) in records {
            let p = partition_for_key(KEYS[k].as_bytes(), self.partitions) as usize;
            self.queues[p][topic].push_back((k, ts));
        }
        self.run();
    }

    /// What the driver does after a batch, a commit or a wall-clock advance: every task
    /// processes until it has nothing queued or waits for an empty partition.
    fn run(&mut self) {
        for task in 0..self.queues.len() {
            loop {
                for i in 0..2 {
                    if self.queues[task][i].is_empty() {
                        self.empty_since[task][i].get_or_insert(self.now);
                    } else {
                        self.empty_since[task][i] = None;
                    }
                }
                let heads = [
                    self.queues[task][0].front().map(|r| r.1),
                    self.queues[task][1].front().map(|r| r.1),
                ];
                let from = match heads {
                    [None, None] => break,
                    [Some(l), Some(r)] => usize::from(r < l),
                    [Some(_), None] | [None, Some(_)] => {
                        let (full, empty) = if heads[0].is_some() { (0, 1) } else { (1, 0) };
                        match self.idle {
                            Idle::Never => {}
                            Idle::Zero => self.enforced += 1,
                            Idle::Wait(idle) => {
                                let since = self.empty_since[task][empty].unwrap();
                                if self.now < since + idle {
                                    break;
                                }
                                self.enforced += 1;
                            }
                        }
                        full
                    }
                };
                let (k, ts) = self.queues[task][from].pop_front().unwrap();
                self.counts.process(task, KEYS[k], ts);
            }
        }
    }
}

fn check_driver(case: &DriverCase) -> Result<(), TestCaseError> {
    let mut config = StreamsConfig::new("ordering")
        .with_default_dsl_store(case.store)
        .with_max_task_idle_ms(case.idle.ms());
    if !case.cache {
        config = config.with_cache_max_bytes(0);
    }
    let mut driver = TopologyTestDriver::builder(topology(case.size, case.grace), config)
        .partitions(TOPICS[0], case.partitions)
        .partitions(TOPICS[1], case.partitions)
        .build()
        .unwrap();
    let inputs = TOPICS.map(|t| driver.input_topic::<String, String>(t));
    let mut model = DriverModel::new(case);
    // In the end the wall clock passes every deadline, so that everything is processed.
    let last = Op::Advance(case.idle.ms().max(0));
    for op in case.ops.iter().chain(std::iter::once(&last)) {
        match op {
            Op::Pipe { topic, records } => {
                inputs[*topic]
                    .pipe_records(
                        records
                            .iter()
                            .map(|(k, ts)| Record::new(KEYS[*k].to_string(), "x".to_string(), *ts)),
                    )
                    .unwrap();
                model.pipe(*topic, records);
            }
            Op::Commit => {
                driver.commit().unwrap();
                model.run();
            }
            Op::Advance(by) => {
                driver.advance_wall_clock_time(ms(*by)).unwrap();
                model.now += by;
                model.run();
            }
        }
    }
    assert!(model.queues.iter().flatten().all(VecDeque::is_empty));
    let reference = &model.counts;

    // Final results: each closed window exactly once, with its final count and time.
    let finals = driver
        .output_topic::<String, i64>("finals")
        .read_records_to_list()
        .unwrap();
    let mut got: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &finals {
        let first = got.insert(r.key.clone(), (r.value, r.timestamp));
        prop_assert!(
            first.is_none(),
            "window {} emitted twice: {:?}",
            r.key,
            finals
                .iter()
                .map(|r| (&r.key, r.value, r.timestamp))
                .collect::<Vec<_>>()
        );
    }
    prop_assert_eq!(
        &got,
        &reference.closed(),
        "finals: (count, timestamp) per window"
    );

    // Updates: the last one of each window is its count; without the cache, every one.
    let updates = driver::key_values::<String, i64>(&driver, "updates");
    prop_assert_eq!(
        last_values(&updates),
        reference.all(),
        "last update per window"
    );
    if !case.cache {
        let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
        for (w, n) in &updates {
            let prev = seen.entry(w).or_insert(0);
            prop_assert_eq!(*n, *prev + 1, "updates of {} without the cache", w);
            *prev = *n;
        }
    }

    // Late records and the metrics.
    let mut late: Vec<(String, i64)> = driver
        .output_topic::<String, String>("late")
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.timestamp))
        .collect();
    late.sort();
    let mut want_late = reference.late.clone();
    want_late.sort();
    prop_assert_eq!(&late, &want_late, "late records");
    let m = driver.metrics();
    prop_assert_eq!(m.dropped_records, want_late.len() as u64, "dropped_records");
    prop_assert_eq!(m.processed, reference.processed, "processed");
    prop_assert_eq!(m.enforced_processing, model.enforced, "enforced_processing");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The driver against a simulation of its documented processing order.
    #[test]
    fn driver_windows_and_final_results_match_a_simulation_of_the_processing_order(
        case in driver_case()
    ) {
        check_driver(&case)?;
    }
}

// ---------------------------------------------------------------------------------------
// B. The runtime on the embedded engine.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RuntimeCase {
    partitions: u32,
    size: i64,
    cache: bool,
    store: DslStore,
    threads: usize,
    buffered: usize,
    commit_ms: i64,
    poll_ms: i64,
    idle_ms: i64,
    /// `consumer.max.poll.records` (`None`: the default, no limit).
    max_poll_records: Option<usize>,
    /// `consumer.max.partition.fetch.bytes` (`None`: the default, 1 MiB); a small value
    /// makes each poll read one record per partition.
    partition_fetch_bytes: Option<usize>,
    /// Close the app once it processed this share (percent) of the input, then start a new
    /// one on the same state directory and engine.
    restart_at: Option<u64>,
    /// Per topic: (key index, timestamp), written per partition in timestamp order.
    records: [Vec<(usize, i64)>; 2],
}

/// Per topic `topic` (0 or 1): up to 50 records as (key index, timestamp), timestamps of
/// that topic's parity.
fn topic_records(topic: i64) -> impl Strategy<Value = Vec<(usize, i64)>> {
    vec((0..KEYS.len(), 0i64..150), 0..50).prop_map(move |recs| {
        recs.into_iter()
            .map(|(k, x)| (k, 2 * x + topic))
            .collect::<Vec<_>>()
    })
}

prop_compose! {
    fn runtime_case()(
        partitions in 1u32..=4,
        size in select(vec![10i64, 20, 50]),
        cache in any::<bool>(),
        in_memory in any::<bool>(),
        threads in 1usize..=2,
        buffered in select(vec![1usize, 3, 10, 1000]),
        commit_ms in select(vec![5i64, 50, 1000]),
        poll_ms in select(vec![5i64, 50]),
        idle_ms in select(vec![0i64, 0, 20]),
        max_poll_records in proptest::option::of(select(vec![1usize, 3, 10, 40])),
        partition_fetch_bytes in proptest::option::of(Just(64usize)),
        restart_at in proptest::option::of(10u64..90),
        left in topic_records(0),
        right in topic_records(1),
    ) -> RuntimeCase {
        RuntimeCase {
            partitions,
            size,
            cache,
            store: if in_memory {
                DslStore::InMemory
            } else {
                DslStore::RocksDb
            },
            threads,
            buffered,
            commit_ms,
            poll_ms,
            idle_ms,
            max_poll_records,
            partition_fetch_bytes,
            restart_at,
            records: [left, right],
        }
    }
}

/// Every record of `topic` as (key, value, timestamp), partition by partition in offset
/// order; nothing when the topic was never created.
fn read_all(engine: &LogEngine, topic: &str) -> Vec<(String, Option<Vec<u8>>, i64)> {
    let Some(partitions) = engine
        .topics()
        .into_iter()
        .find(|(n, _)| n == topic)
        .map(|(_, c)| c.partitions)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in 0..partitions {
        for r in engine.read(topic, p, 0, usize::MAX).unwrap() {
            out.push((
                String::from_utf8(r.key.unwrap()).unwrap(),
                r.value,
                r.timestamp,
            ));
        }
    }
    out
}

fn counts_of(records: Vec<(String, Option<Vec<u8>>, i64)>) -> Vec<(String, i64)> {
    records
        .into_iter()
        .map(|(k, v, _)| (k, i64::from_be_bytes(v.unwrap().try_into().unwrap())))
        .collect()
}

fn start_app(engine: &Arc<LogEngine>, state: &Path, case: &RuntimeCase) -> KafkaStreams {
    let mut config = StreamsConfig::new("ordering-rt")
        .with_state_dir(state)
        .with_default_dsl_store(case.store)
        .with_num_stream_threads(case.threads)
        .with_buffered_records_per_partition(case.buffered)
        .with_commit_interval(ms(case.commit_ms))
        .with_poll(ms(case.poll_ms))
        .with_max_task_idle_ms(case.idle_ms);
    if !case.cache {
        config = config.with_cache_max_bytes(0);
    }
    if let Some(n) = case.max_poll_records {
        config =
            config.with_client_property(ClientPrefix::Consumer, "max.poll.records", n.to_string());
    }
    if let Some(n) = case.partition_fetch_bytes {
        config = config.with_client_property(
            ClientPrefix::Consumer,
            "max.partition.fetch.bytes",
            n.to_string(),
        );
    }
    let mut app = KafkaStreams::new(topology(case.size, 0), config, engine.clone()).unwrap();
    app.start().unwrap();
    app
}

fn check_runtime(case: &RuntimeCase) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    let n = case.partitions;
    // The reference: all records of a task, in timestamp order (nothing is late).
    let mut counts = Counts::new(n as usize, case.size, 0);
    let mut by_task: Vec<Vec<(i64, usize)>> = vec![Vec::new(); n as usize];
    for (topic, records) in TOPICS.iter().zip(&case.records) {
        engine.create_topic(topic, TopicConfig::new(n)).unwrap();
        for p in 0..n {
            let mut mine: Vec<(usize, i64)> = records
                .iter()
                .copied()
                .filter(|(k, _)| partition_for_key(KEYS[*k].as_bytes(), n) == p)
                .collect();
            mine.sort_by_key(|r| r.1);
            // One batch per record, so that a fetch can stop between any two.
            for &(k, ts) in &mine {
                engine
                    .append(
                        topic,
                        p,
                        &[NewRecord {
                            timestamp: ts,
                            key: Some(KEYS[k].as_bytes().to_vec()),
                            value: Some(b"x".to_vec()),
                            headers: Vec::new(),
                        }],
                    )
                    .unwrap();
                by_task[p as usize].push((ts, k));
            }
        }
    }
    let total: usize = case.records.iter().map(Vec::len).sum();
    for (task, mut records) in by_task.into_iter().enumerate() {
        records.sort_unstable();
        for (ts, k) in records {
            counts.process(task, KEYS[k], ts);
        }
    }
    assert!(counts.late.is_empty());

    let state = dir.path().join("state");
    let mut metrics: Vec<TaskMetrics> = Vec::new();
    let mut app = start_app(&engine, &state, case);
    if let Some(percent) = case.restart_at {
        let target = total as u64 * percent / 100;
        let deadline = Instant::now() + Duration::from_secs(30);
        while app.metrics().total().processed < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        metrics.push(app.metrics().total());
        app.close().unwrap();
        app = start_app(&engine, &state, case);
    }
    let caught_up = app.wait_until_caught_up(Duration::from_secs(20));
    let tasks: Vec<String> = app
        .metrics()
        .tasks()
        .map(|t| format!("{} {:?} lag {}", t.id, t.state, t.lag))
        .collect();
    metrics.push(app.metrics().total());
    app.close().unwrap();
    prop_assert!(caught_up.is_ok(), "{caught_up:?}; tasks: {tasks:?}");

    let late = read_all(&engine, "late");
    prop_assert!(
        late.is_empty(),
        "records dropped as late (key, timestamp): {:?}",
        late.iter().map(|(k, _, ts)| (k, ts)).collect::<Vec<_>>()
    );
    for m in &metrics {
        prop_assert_eq!(m.dropped_records, 0, "dropped_records");
    }
    let finals = counts_of(read_all(&engine, "finals"));
    let mut got: BTreeMap<String, i64> = BTreeMap::new();
    for (w, c) in &finals {
        prop_assert!(
            got.insert(w.clone(), *c).is_none(),
            "window {} emitted twice: {:?}",
            w,
            finals
        );
    }
    let want: BTreeMap<String, i64> = counts
        .closed()
        .into_iter()
        .map(|(w, (c, _))| (w, c))
        .collect();
    prop_assert_eq!(&got, &want, "finals: count per closed window");
    let updates = counts_of(read_all(&engine, "updates"));
    prop_assert_eq!(
        last_values(&updates),
        counts.all(),
        "last update per window"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        // A case takes up to a few seconds (20 s when the app does not catch up): shrink
        // for a minute at most.
        max_shrink_iters: 64,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A backlog on the embedded engine: processed in timestamp order across a task's
    /// partitions, so nothing is late and the final windows are plain counts.
    #[test]
    fn runtime_processes_a_backlog_in_timestamp_order_so_final_windows_are_plain_counts(
        case in runtime_case()
    ) {
        check_runtime(&case)?;
    }
}
