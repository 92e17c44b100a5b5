//! Driver tests of the Processor API: processors with connected stores, forwarding to all
//! or one named child, record metadata, task id and stream time, punctuators on stream time
//! and wall-clock time, cancellation, commit requests, and errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_core::prelude::*;
use streams_tests::driver;

const APP: &str = "procs";

fn s(x: &str) -> String {
    x.to_string()
}

fn counts_store(builder: &StreamsBuilder, name: &str) {
    driver::add_in_memory_store::<String, i64>(builder, name);
}

/// `builder` (holding any stores) with "in" through the processor `name` (made by
/// `supplier`, connected to `stores`) to "out".
fn one_processor<V, VOut, P, S>(
    builder: StreamsBuilder,
    supplier: S,
    name: &str,
    stores: &[&str],
) -> Result<Topology, StreamsError>
where
    V: Data + DefaultSerde,
    VOut: Data + DefaultSerde,
    P: Processor<String, V, String, VOut>,
    S: Fn() -> P + Send + Sync + 'static,
{
    builder
        .stream::<String, V>("in")
        .process(supplier, Named::as_(name), stores)
        .to("out");
    Ok(builder.build()?)
}

/// A driver of `topology` with the app's config, every topic with one partition.
fn start(topology: Topology) -> Result<TopologyTestDriver, StreamsError> {
    TopologyTestDriver::new(topology, StreamsConfig::new(APP))
}

/// The values written to "out" not read yet.
#[allow(clippy::unwrap_used)] // a panic fails the test
fn out_values<V: DefaultSerde>(driver: &TopologyTestDriver) -> Vec<V> {
    driver
        .output_topic::<String, V>("out")
        .read_values_to_list()
        .unwrap()
}

/// Checks that `result` is the error of a store that could not be opened: `store`.
fn assert_store_access<T: std::fmt::Debug>(result: Result<T, StreamsError>, store: &str) {
    match result {
        Err(StreamsError::StoreAccess { store: s, detail }) => {
            assert_eq!(s, store, "detail: {detail}");
        }
        other => panic!("expected StoreAccess, got {other:?}"),
    }
}

/// Counts records per key in the store "counts" and forwards the new count.
struct Counter {
    store: Option<KeyValueStoreHandle<String, i64>>,
}

impl Processor<String, String, String, i64> for Counter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
        self.store = Some(ctx.key_value_store("counts")?);
        Ok(())
    }
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| StreamsError::processor(ctx.name(), "process before init"))?;
        let n = store.get(&r.key)?.unwrap_or(0) + 1;
        store.put(&r.key, &n)?;
        ctx.forward(Record::new(r.key, n, r.timestamp))
    }
}

#[test]
fn a_processor_keeps_state_in_its_connected_store() {
    let builder = StreamsBuilder::new();
    counts_store(&builder, "counts");
    let counter = || Counter { store: None };
    let topology = one_processor(builder, counter, "counter", &["counts"]).unwrap();
    let description = topology.describe().to_string();
    assert!(description.contains("Processor: counter (stores: [counts])"));
    let driver = driver::with_partitions(topology, StreamsConfig::new(APP), &[("in", 4)]);
    let input = driver.input_topic::<String, String>("in");
    for (k, ts) in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5), ("b", 6)] {
        input.pipe_input_at(s(k), s("x"), ts).unwrap();
    }
    let got = driver::records(&driver.output_topic::<String, i64>("out"));
    assert_eq!(
        got,
        vec![
            (s("a"), 1, 1),
            (s("b"), 1, 2),
            (s("a"), 2, 3),
            (s("c"), 1, 4),
            (s("a"), 3, 5),
            (s("b"), 2, 6),
        ]
    );
    let store = driver.key_value_store::<String, i64>("counts").unwrap();
    assert_eq!(store.get(&s("a")).unwrap(), Some(3));
    assert_eq!(store.get(&s("b")).unwrap(), Some(2));
    assert_eq!(store.get(&s("c")).unwrap(), Some(1));
    assert_eq!(store.approximate_num_entries().unwrap(), 3);
}

/// Negative values go to every child; even ones to "evens", odd ones to "odds"; 99 to a child
/// that does not exist.
struct Router;

impl Processor<String, i64, String, i64> for Router {
    fn process(
        &mut self,
        r: Record<String, i64>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        match r.value {
            99 => ctx.forward_to("nope", r),
            v if v < 0 => ctx.forward(r),
            v if v % 2 == 0 => ctx.forward_to("evens", r),
            _ => ctx.forward_to("odds", r),
        }
    }
}

/// "numbers" through the [`Router`], whose children "evens" and "odds" pass everything to
/// the topics of the same names.
#[allow(clippy::unwrap_used)] // the topology is valid: a panic fails the test
fn router_topology() -> Topology {
    let builder = StreamsBuilder::new();
    let routed =
        builder
            .stream::<String, i64>("numbers")
            .process(|| Router, Named::as_("router"), &[]);
    routed
        .filter_named(|_, _| true, Named::as_("evens"), false)
        .to("evens");
    routed
        .filter_named(|_, _| true, Named::as_("odds"), false)
        .to("odds");
    builder.build().unwrap()
}

#[test]
fn forward_reaches_every_child_and_forward_to_only_the_named_one() {
    let text = router_topology().describe().to_string();
    assert!(
        text.contains("Processor: router (stores: [])\n      --> evens, odds\n"),
        "{text}"
    );

    let driver = TopologyTestDriver::new(router_topology(), StreamsConfig::new(APP)).unwrap();
    let input = driver.input_topic::<String, i64>("numbers");
    for v in [2, 3, -1, 4] {
        input.pipe_input(s("k"), v).unwrap();
    }
    let read = |t: &str| {
        driver
            .output_topic::<String, i64>(t)
            .read_values_to_list()
            .unwrap()
    };
    assert_eq!(read("evens"), vec![2, -1, 4]);
    assert_eq!(read("odds"), vec![3, -1]);

    match input.pipe_input(s("k"), 99) {
        Err(StreamsError::UnknownChild { node, child }) => {
            assert_eq!((node.as_str(), child.as_str()), ("router", "nope"));
        }
        other => panic!("expected UnknownChild, got {other:?}"),
    }
}

/// Forwards a description of where each record came from.
struct Describe;

impl Processor<String, String, String, String> for Describe {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        let m = ctx
            .record_metadata()
            .ok_or_else(|| StreamsError::processor(ctx.name(), "no record metadata"))?;
        let text = format!(
            "{}/{}@{} task={} st={} ts={} node={} app={}",
            m.topic,
            m.partition,
            m.offset,
            ctx.task_id(),
            ctx.stream_time(),
            ctx.timestamp(),
            ctx.name(),
            ctx.application_id(),
        );
        ctx.forward(r.with_value(text))
    }
}

#[test]
fn the_context_tells_metadata_task_id_and_stream_time() {
    let topology = one_processor(StreamsBuilder::new(), || Describe, "describe", &[]).unwrap();
    let driver = driver::with_partitions(topology, StreamsConfig::new(APP), &[("in", 2)]);
    let input = driver.input_topic::<String, String>("in");
    input
        .pipe_record_to(1, Record::new(s("a"), s("x"), 100))
        .unwrap();
    input
        .pipe_record_to(1, Record::new(s("b"), s("y"), 50))
        .unwrap(); // out of order: stream time stays 100
    input
        .pipe_record_to(0, Record::new(s("c"), s("z"), 70))
        .unwrap(); // another task: its own stream time
    input
        .pipe_record_to(1, Record::new(s("d"), s("w"), 150))
        .unwrap();
    assert_eq!(
        out_values::<String>(&driver),
        vec![
            s("in/1@0 task=0_1 st=100 ts=100 node=describe app=procs"),
            s("in/1@1 task=0_1 st=100 ts=50 node=describe app=procs"),
            s("in/0@0 task=0_0 st=70 ts=70 node=describe app=procs"),
            s("in/1@2 task=0_1 st=150 ts=150 node=describe app=procs"),
        ]
    );
}

#[test]
fn record_metadata_after_a_repartition_names_the_internal_topic() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .repartition_with(
            Repartitioned::as_("by-value")
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
        .process(|| Describe, Named::as_("describe"), &[])
        .to("out");
    let driver = start(builder.build().unwrap()).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("k1"), s("v"), 5).unwrap();
    input.pipe_input_at(s("k2"), s("v"), 7).unwrap();
    assert_eq!(
        out_values::<String>(&driver),
        vec![
            s("procs-by-value-repartition/0@0 task=1_0 st=5 ts=5 node=describe app=procs"),
            s("procs-by-value-repartition/0@1 task=1_0 st=7 ts=7 node=describe app=procs"),
        ]
    );
}

/// Schedules one punctuator in init and forwards ("tick", punctuation time) when it fires;
/// the key says whether record metadata was (wrongly) present.
struct Ticker {
    kind: PunctuationType,
    interval: Duration,
}

impl Processor<String, String, String, i64> for Ticker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
        ctx.schedule(self.interval, self.kind)?;
        Ok(())
    }
    fn process(
        &mut self,
        _r: Record<String, String>,
        _ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        Ok(())
    }
    fn punctuate(
        &mut self,
        p: Punctuation,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        assert_eq!(p.kind, self.kind);
        assert_eq!(ctx.timestamp(), p.timestamp);
        let key = if ctx.record_metadata().is_none() {
            "tick"
        } else {
            "tick-with-metadata"
        };
        ctx.forward(Record::new(s(key), p.timestamp, p.timestamp))
    }
}

fn ticker_driver(
    kind: PunctuationType,
    wall_clock_start: i64,
) -> Result<TopologyTestDriver, StreamsError> {
    let ticker = move || Ticker {
        kind,
        interval: Duration::from_secs(10),
    };
    let topology = one_processor(StreamsBuilder::new(), ticker, "ticker", &[])?;
    TopologyTestDriver::builder(topology, StreamsConfig::new(APP))
        .wall_clock_start(wall_clock_start)
        .build()
}

/// The ticks written to "out" not read yet.
fn ticks(out: &TestOutputTopic<String, i64>) -> Vec<(String, i64, i64)> {
    driver::records(out)
}

fn tick(t: i64) -> (String, i64, i64) {
    (s("tick"), t, t)
}

/// The ticks at each time of `times`.
fn ticks_at(times: &[i64]) -> Vec<(String, i64, i64)> {
    times.iter().map(|&t| tick(t)).collect()
}

/// Pipes a record at each step's timestamp and checks the ticks (times) it fires.
#[allow(clippy::unwrap_used)] // a panic fails the test
fn pipe_and_expect(
    driver: &TopologyTestDriver,
    out: &TestOutputTopic<String, i64>,
    steps: &[(i64, &[i64])],
) {
    let input = driver.input_topic::<String, String>("in");
    for &(ts, want) in steps {
        input.pipe_input_at(s("k"), s("v"), ts).unwrap();
        assert_eq!(ticks(out), ticks_at(want), "after a record at {ts}");
    }
}

/// Advances the wall clock by each step's milliseconds and checks the ticks (times) it
/// fires.
#[allow(clippy::unwrap_used)] // a panic fails the test
fn advance_and_expect(
    driver: &mut TopologyTestDriver,
    out: &TestOutputTopic<String, i64>,
    steps: &[(u64, &[i64])],
) {
    for &(ms, want) in steps {
        driver
            .advance_wall_clock_time(Duration::from_millis(ms))
            .unwrap();
        let now = driver.wall_clock_time();
        assert_eq!(ticks(out), ticks_at(want), "advanced by {ms} ms to {now}");
    }
}

#[test]
fn stream_time_punctuators_fire_at_the_first_record_then_on_interval_boundaries() {
    let mut driver = ticker_driver(PunctuationType::StreamTime, 0).unwrap();
    let out = driver.output_topic::<String, i64>("out");
    pipe_and_expect(
        &driver,
        &out,
        &[
            (1_000, &[1_000]), // first record: fires
            (5_000, &[]),      // before 10 s
            (9_999, &[]),
            (10_000, &[10_000]), // aligned to the interval
            // Fell behind by several intervals (20 s, 30 s, 40 s): fires once.
            (45_000, &[45_000]),
            (49_999, &[]),
            (50_000, &[50_000]),
            // A late record does not move stream time...
            (20_000, &[]),
        ],
    );
    // ...and the wall clock does not drive it either.
    advance_and_expect(&mut driver, &out, &[(600_000, &[])]);
    assert_eq!(driver.metrics().punctuations, 4);
}

#[test]
fn stream_time_punctuators_do_not_fire_before_any_record() {
    let mut driver = ticker_driver(PunctuationType::StreamTime, 0).unwrap();
    let out = driver.output_topic::<String, i64>("out");
    advance_and_expect(&mut driver, &out, &[(60_000, &[])]);
    assert_eq!(driver.metrics().punctuations, 0);
}

#[test]
fn wall_clock_punctuators_fire_once_per_advance_that_crosses_their_time() {
    let mut driver = ticker_driver(PunctuationType::WallClockTime, 0).unwrap();
    let out = driver.output_topic::<String, i64>("out");
    advance_and_expect(
        &mut driver,
        &out,
        &[
            (9_000, &[]),
            (1_000, &[10_000]),
            // Several intervals in one advance: fires once, then stays aligned.
            (35_000, &[45_000]),
            (4_000, &[]),
            (1_000, &[50_000]),
        ],
    );
    assert_eq!(driver.wall_clock_time(), 50_000);
    // Records do not drive wall-clock punctuators.
    pipe_and_expect(&driver, &out, &[(1_000_000, &[])]);
    assert_eq!(driver.metrics().punctuations, 3);
}

#[test]
fn wall_clock_punctuators_start_one_interval_after_the_mocked_start_time() {
    let mut driver = ticker_driver(PunctuationType::WallClockTime, 1_000).unwrap();
    let out = driver.output_topic::<String, i64>("out");
    assert_eq!(driver.wall_clock_time(), 1_000);
    advance_and_expect(&mut driver, &out, &[(9_999, &[]), (1, &[11_000])]);
}

/// Schedules a stream-time punctuator and cancels it on the record "stop".
struct Cancellable {
    id: Option<ScheduleId>,
    commits: Arc<AtomicUsize>,
}

impl Processor<String, String, String, i64> for Cancellable {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
        self.id = Some(ctx.schedule(Duration::from_secs(10), PunctuationType::StreamTime)?);
        Ok(())
    }
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        if let (Some(id), "stop") = (self.id, r.value.as_str()) {
            ctx.cancel(id);
        }
        ctx.request_commit();
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn punctuate(
        &mut self,
        p: Punctuation,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        assert_eq!(Some(p.id), self.id);
        ctx.forward(Record::new(s("tick"), p.timestamp, p.timestamp))
    }
}

#[test]
fn a_cancelled_punctuator_stops_firing_and_request_commit_is_harmless() {
    let commits = Arc::new(AtomicUsize::new(0));
    let c = commits.clone();
    let cancellable = move || Cancellable {
        id: None,
        commits: c.clone(),
    };
    let topology = one_processor(StreamsBuilder::new(), cancellable, "cancellable", &[]);
    let driver = start(topology.unwrap()).unwrap();
    let input = driver.input_topic::<String, String>("in");
    let out = driver.output_topic::<String, i64>("out");
    input.pipe_input_at(s("k"), s("a"), 0).unwrap();
    input.pipe_input_at(s("k"), s("b"), 10_000).unwrap();
    input.pipe_input_at(s("k"), s("stop"), 15_000).unwrap();
    input.pipe_input_at(s("k"), s("c"), 20_000).unwrap();
    input.pipe_input_at(s("k"), s("d"), 30_000).unwrap();
    assert_eq!(ticks(&out), vec![tick(0), tick(10_000)]);
    assert_eq!(commits.load(Ordering::Relaxed), 5);
    assert_eq!(driver.metrics().processed, 5);
}

/// Fails on negative values.
struct Validator;

impl Processor<String, i64, String, i64> for Validator {
    fn process(
        &mut self,
        r: Record<String, i64>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        if r.value < 0 {
            return Err(StreamsError::processor(
                ctx.name(),
                format!("negative value {}", r.value),
            ));
        }
        ctx.forward(r)
    }
}

#[test]
fn an_error_returned_by_a_processor_surfaces_from_pipe_input() {
    let topology = one_processor(StreamsBuilder::new(), || Validator, "validator", &[]);
    let driver = start(topology.unwrap()).unwrap();
    let input = driver.input_topic::<String, i64>("in");
    input.pipe_input(s("a"), 1).unwrap();
    let err = input.pipe_input(s("b"), -7).unwrap_err();
    match &err {
        StreamsError::Processor { node, message } => {
            assert_eq!(node, "validator");
            assert_eq!(message, "negative value -7");
        }
        other => panic!("expected a processor error, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "processor `validator` failed: negative value -7"
    );
    assert_eq!(out_values::<i64>(&driver), vec![1]);
}

/// Opens the store named `store` with the given value type, in init or on each record.
struct Opener<V> {
    store: &'static str,
    in_init: bool,
    _v: std::marker::PhantomData<fn() -> V>,
}

fn opener<V>(store: &'static str, in_init: bool) -> Opener<V> {
    Opener {
        store,
        in_init,
        _v: std::marker::PhantomData,
    }
}

impl<V: Send + 'static> Processor<String, String, String, String> for Opener<V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), StreamsError> {
        if self.in_init {
            ctx.key_value_store::<String, V>(self.store)?;
        }
        Ok(())
    }
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        ctx.key_value_store::<String, V>(self.store)?;
        ctx.forward(r)
    }
}

#[test]
fn a_store_that_is_not_connected_cannot_be_opened() {
    let orphan = |in_init| {
        let builder = StreamsBuilder::new();
        counts_store(&builder, "orphan");
        let topology = one_processor(builder, move || opener::<i64>("orphan", in_init), "p", &[]);
        start(topology.unwrap())
    };
    // Opened in init: the driver cannot start.
    assert_store_access(orphan(true), "orphan");
    // Opened while processing: pipe_input fails.
    let driver = orphan(false).unwrap();
    let input = driver.input_topic::<String, String>("in");
    assert_store_access(input.pipe_input(s("k"), s("v")), "orphan");
}

#[test]

fn a_store_connected_to_another_processor_of_the_same_subtopology_cannot_be_opened() {
    let builder = StreamsBuilder::new();
    counts_store(&builder, "counts");
    builder
        .stream::<String, String>("in")
        .process(
            || Counter { store: None },
            Named::as_("counter"),
            &["counts"],
        )
        .map_values(|n| n.to_string())
        // Same sub-topology as "counter", but not connected to "counts".
        .process(
            || opener::<i64>("counts", true),
            Named::as_("intruder"),
            &[],
        )
        .to("out");
    assert_store_access(start(builder.build().unwrap()), "counts");
}

#[test]

fn opening_a_store_with_the_wrong_types_names_the_store() {
    let builder = StreamsBuilder::new();
    counts_store(&builder, "counts");
    let opener = || opener::<String>("counts", true);
    let topology = one_processor(builder, opener, "p", &["counts"]).unwrap();
    assert_store_access(start(topology), "counts");
}

/// Counts its closes.
struct Closing(Arc<Mutex<Vec<String>>>);

impl Processor<String, String, String, String> for Closing {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        ctx.forward(r)
    }
    fn close(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        self.0
            .lock()
            .map_err(|e| StreamsError::processor(ctx.name(), e))?
            .push(ctx.task_id().to_string());
        Ok(())
    }
}

#[test]
fn closing_the_driver_closes_every_task_s_processor() {
    let closed = Arc::new(Mutex::new(Vec::new()));
    let c = closed.clone();
    let topology = one_processor(
        StreamsBuilder::new(),
        move || Closing(c.clone()),
        "closing",
        &[],
    );
    let driver = driver::with_partitions(topology.unwrap(), StreamsConfig::new(APP), &[("in", 3)]);
    assert!(closed.lock().unwrap().is_empty());
    driver.close().unwrap();
    let mut got = closed.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![s("0_0"), s("0_1"), s("0_2")]);
}

/// Re-keys each record by its value.
struct ReKey;

impl Processor<String, String, String, String> for ReKey {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        let key = r.value.clone();
        ctx.forward(r.with_key(key))
    }
}

#[test]
fn grouping_after_a_processor_repartitions_because_it_may_change_keys() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .process(|| ReKey, Named::as_("rekey"), &[])
        .group_by_key()
        .count_with(Materialized::as_("per-value"))
        .to_stream()
        .to("counts");
    let driver = driver::partitioned(builder, StreamsConfig::new(APP), 2, &[("in", 4)]);
    let input = driver.input_topic::<String, String>("in");
    for i in 0..12 {
        input
            .pipe_input(format!("k{i}"), format!("v{}", i % 3))
            .unwrap();
    }
    let store = driver.key_value_store::<String, i64>("per-value").unwrap();
    let mut all = store.all().unwrap();
    all.sort();
    assert_eq!(all, vec![(s("v0"), 4), (s("v1"), 4), (s("v2"), 4)]);
}

/// Tries to schedule a punctuator with a zero interval.
struct ZeroInterval;

impl Processor<String, String, String, String> for ZeroInterval {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), StreamsError> {
        ctx.schedule(Duration::ZERO, PunctuationType::StreamTime)?;
        Ok(())
    }
    fn process(
        &mut self,
        _r: Record<String, String>,
        _ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        Ok(())
    }
}

#[test]
fn a_punctuation_interval_below_one_millisecond_is_refused() {
    let topology = one_processor(StreamsBuilder::new(), || ZeroInterval, "zero", &[]);
    match start(topology.unwrap()) {
        Err(StreamsError::Processor { node, message }) => {
            assert_eq!(node, "zero");
            assert!(message.contains("at least 1 ms"), "{message}");
        }
        other => panic!("expected a processor error, got {other:?}"),
    }
}

/// Puts `None` and `Some("")` keys into a store with optional keys and reports what it reads.
struct OptionalKeys;

impl Processor<String, String, String, String> for OptionalKeys {
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        let store = ctx.key_value_store::<Option<String>, i64>("by-optional-key")?;
        let none_put = store.put(&None, &1);
        store.put(&Some(s("")), &2)?;
        let report = match none_put {
            // Refusing a null key (as Kafka's stores do) is fine...
            Err(_) => s("null key refused"),
            // ...but if it is accepted, it must stay distinct from the empty string.
            Ok(()) => format!(
                "none={:?} empty={:?} entries={}",
                store.get(&None)?,
                store.get(&Some(s("")))?,
                store.approximate_num_entries()?
            ),
        };
        ctx.forward(r.with_value(report))
    }
}

#[test]

fn a_none_key_and_an_empty_key_are_not_conflated_in_a_store() {
    let builder = StreamsBuilder::new();
    driver::add_in_memory_store::<Option<String>, i64>(&builder, "by-optional-key");
    let topology = one_processor(builder, || OptionalKeys, "optional", &["by-optional-key"]);
    let driver = start(topology.unwrap()).unwrap();
    driver
        .input_topic::<String, String>("in")
        .pipe_input(s("k"), s("v"))
        .unwrap();
    let report = driver
        .output_topic::<String, String>("out")
        .read_value()
        .unwrap()
        .unwrap();
    assert!(
        report == "null key refused" || report == "none=Some(1) empty=Some(2) entries=2",
        "{report}"
    );
}
