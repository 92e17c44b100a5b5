//! The runtime's `tracing` output (docs/TRACING.md): a `stream_thread` span per stream
//! thread, `task` spans (task id, partition) below it for every task of the app, one
//! `partitions assigned` line per rebalance with what moved and its duration (a first
//! assignment, and a second instance joining), and one `task restored, running` line per
//! task with the records restored (checked against the changelog) and the duration.
//!
//! The log is captured as an app would print it: `tracing-subscriber`'s `fmt` with an
//! `EnvFilter` (here `warn,streams_core::runtime=debug`, one of the documented `RUST_LOG`
//! settings), span creations included, then parsed back.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams_core::prelude::*;
use streams_core::runtime::{
    Isolation, KafkaStreams, LogEngine, StreamsState, TaskState, TopicConfig,
};
use streams_tests::wordcount::{PARTITIONS, SENTENCES, final_counts, produce};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;

const APP: &str = "traced";
const CHANGELOG: &str = "traced-counts-changelog";
const REPARTITION: &str = "traced-counts-repartition";

/// Where the subscriber writes: every line of the process's log.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// The lines written since the last call.
    fn take_lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A span of a line's context: its name and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SpanCtx {
    name: String,
    fields: BTreeMap<String, String>,
}

/// One formatted log line, parsed: `LEVEL ctx{..}:ctx{..}: target: message k=v k=v`.
#[derive(Debug)]
struct Line {
    level: String,
    spans: Vec<SpanCtx>,
    target: String,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Line {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("no field `{name}` in {self:?}"))
    }

    fn number(&self, name: &str) -> u64 {
        self.field(name)
            .parse()
            .unwrap_or_else(|e| panic!("field `{name}` of {self:?}: {e}"))
    }

    fn span(&self, name: &str) -> Option<&SpanCtx> {
        self.spans.iter().find(|s| s.name == name)
    }
}

fn parse_fields(text: &str) -> (String, BTreeMap<String, String>) {
    let mut message = Vec::new();
    let mut fields = BTreeMap::new();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        match token.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                fields.insert(k.to_string(), v.to_string());
            }
            _ => message.push(token),
        }
    }
    (message.join(" "), fields)
}

/// Parses a line of the `fmt` layer's full format (no time, no colours).
fn parse(line: &str) -> Option<Line> {
    let (level, rest) = line.trim_start().split_once(' ')?;
    let rest = rest.trim_start();
    // The span context is `name{fields}:name{fields}: ` (or nothing).
    let mut spans = Vec::new();
    let mut rest = rest;
    while let Some(open) = rest.find('{') {
        let name = &rest[..open];
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            break;
        }
        let close = rest[open..].find('}')? + open;
        let (_, fields) = parse_fields(&rest[open + 1..close]);
        spans.push(SpanCtx {
            name: name.to_string(),
            fields,
        });
        rest = rest[close + 1..].strip_prefix(':')?;
        rest = rest.strip_prefix(' ').unwrap_or(rest);
    }
    let (target, text) = rest.split_once(": ")?;
    let (message, fields) = parse_fields(text);
    Some(Line {
        level: level.to_string(),
        spans,
        target: target.to_string(),
        message,
        fields,
    })
}

fn run_app(engine: &Arc<LogEngine>, state: &Path) {
    let config = StreamsConfig::new(APP)
        .with_state_dir(state)
        .with_commit_interval(Duration::from_millis(50));
    let topology = streams_tests::wordcount::topology(true);
    let mut app = KafkaStreams::new(topology, config, engine.clone()).unwrap();
    app.start().unwrap();
    app.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}

/// Keyed records per partition of `topic`, read from the log (what a restoration of it
/// applies).
fn keyed_records(engine: &LogEngine, topic: &str, partitions: u32) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let mut n = 0;
        let mut offset = 0;
        loop {
            let r = engine
                .read_with(topic, p, offset, 1 << 20, Isolation::ReadUncommitted)
                .unwrap();
            n += r.records.iter().filter(|r| r.key.is_some()).count() as u64;
            if r.next_offset == offset {
                break;
            }
            offset = r.next_offset;
        }
        out.insert(p, n);
    }
    out
}

/// Runs the app through its input (timed), checks its final counts against `expected`
/// and, with [`check_run`], the lines it logged; returns what each task restored.
fn run_and_check(
    engine: &Arc<LogEngine>,
    state: &Path,
    expected: &HashMap<String, i64>,
    capture: &Capture,
) -> BTreeMap<String, u64> {
    let t0 = Instant::now();
    run_app(engine, state);
    let took = t0.elapsed();
    assert_eq!(&final_counts(engine), expected);
    let lines: Vec<Line> = capture
        .take_lines()
        .iter()
        .filter_map(|l| parse(l))
        .collect();
    check_run(&lines, engine, took)
}

/// What one run of the app logged, checked against the topics: returns the `task restored,
/// running` lines by task id.
fn check_run(lines: &[Line], engine: &LogEngine, took: Duration) -> BTreeMap<String, u64> {
    let ours: Vec<&Line> = lines
        .iter()
        .filter(|l| l.target.starts_with("streams_core::runtime"))
        .collect();
    // The stream thread's span: one thread, named after the app.
    let threads: BTreeSet<&str> = ours
        .iter()
        .filter_map(|l| l.span("stream_thread"))
        .map(|s| s.fields["thread"].as_str())
        .collect();
    assert_eq!(threads.len(), 1, "one stream thread: {threads:?}");
    let thread = *threads.iter().next().unwrap();
    assert!(
        thread.starts_with(&format!("{APP}-")) && thread.ends_with("-StreamThread-1"),
        "{thread}"
    );

    // The tasks: one per partition of each sub-topology's source, worked out from the
    // topics (sub-topology 0 reads `sentences`, 1 the repartition topic).
    let topics: HashMap<String, TopicConfig> = engine.topics().into_iter().collect();
    let mut expected_tasks = BTreeSet::new();
    for (sub, topic) in [SENTENCES, REPARTITION].iter().enumerate() {
        for p in 0..topics[*topic].partitions {
            expected_tasks.insert((format!("{sub}_{p}"), p.to_string()));
        }
    }
    assert_eq!(expected_tasks.len(), 2 * PARTITIONS as usize);
    let mut task_spans = BTreeSet::new();
    for l in &ours {
        let Some(at) = l.spans.iter().position(|s| s.name == "task") else {
            continue;
        };
        // A task span is a child of the thread's span.
        assert!(at > 0, "task span without a parent: {l:?}");
        assert_eq!(l.spans[at - 1].name, "stream_thread", "{l:?}");
        assert_eq!(l.spans[at - 1].fields["thread"], thread);
        let s = &l.spans[at];
        task_spans.insert((s.fields["task_id"].clone(), s.fields["partition"].clone()));
    }
    assert_eq!(task_spans, expected_tasks);

    // One rebalance: the first assignment, nothing revoked, every source partition
    // assigned, every task opened.
    let rebalances: Vec<&&Line> = ours
        .iter()
        .filter(|l| l.message == "partitions assigned")
        .collect();
    assert_eq!(rebalances.len(), 1, "{rebalances:?}");
    let r = rebalances[0];
    assert_eq!(r.level, "INFO");
    assert_eq!(r.spans[0].name, "stream_thread");
    assert_eq!(r.field("thread"), thread);
    assert!(r.number("generation") >= 1);
    assert_eq!(r.number("revoked_partitions"), 0);
    assert_eq!(r.number("revoked_tasks"), 0);
    assert_eq!(
        r.number("assigned_partitions"),
        u64::from(topics[SENTENCES].partitions + topics[REPARTITION].partitions)
    );
    assert_eq!(r.number("active_tasks"), expected_tasks.len() as u64);
    assert_eq!(r.number("opened"), expected_tasks.len() as u64);
    assert_eq!(r.number("resumed"), 0);
    assert!(Duration::from_millis(r.number("duration_ms")) <= took);

    // One restoration line per task, inside its task span, with a duration.
    let mut restored = BTreeMap::new();
    for l in ours
        .iter()
        .filter(|l| l.message == "task restored, running")
    {
        assert_eq!(l.level, "INFO");
        let id = l.field("task").to_string();
        let span = l.span("task").unwrap_or_else(|| panic!("{l:?}"));
        assert_eq!(span.fields["task_id"], id);
        assert_eq!(span.fields["partition"], l.field("partition"));
        assert!(Duration::from_millis(l.number("duration_ms")) <= took);
        let previous = restored.insert(id.clone(), l.number("restored"));
        assert!(previous.is_none(), "two restoration lines for {id}");
    }
    let ids: BTreeSet<String> = expected_tasks.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(restored.keys().cloned().collect::<BTreeSet<_>>(), ids);
    restored
}

#[test]
fn spans_and_lines_of_the_stream_thread_and_its_tasks() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .without_time()
                .with_span_events(FmtSpan::NEW),
        )
        .with(EnvFilter::new("warn,streams_core::runtime=debug"))
        .try_init()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    engine
        .create_topic(SENTENCES, TopicConfig::new(PARTITIONS))
        .unwrap();
    let state = dir.path().join("state");
    let mut expected = HashMap::new();

    // First run: empty state, nothing to restore.
    produce(&engine, 0, 400, &mut expected);
    let restored = run_and_check(&engine, &state, &expected, &capture);
    assert!(restored.values().all(|&n| n == 0), "{restored:?}");

    // The state directory is lost: the counts' tasks restore their changelogs, each
    // logging the records it applied.
    std::fs::remove_dir_all(&state).unwrap();
    let changelog = keyed_records(&engine, CHANGELOG, PARTITIONS);
    assert!(changelog.values().sum::<u64>() > 0);
    produce(&engine, 400, 100, &mut expected);
    let restored = run_and_check(&engine, &state, &expected, &capture);
    for p in 0..PARTITIONS {
        assert_eq!(restored[&format!("0_{p}")], 0, "stateless task 0_{p}");
        assert_eq!(restored[&format!("1_{p}")], changelog[&p], "task 1_{p}");
    }

    // A second instance joins: the first one's thread revokes all its partitions and keeps
    // part of them (eager protocol), the new one opens the rest. The last rebalance line of
    // each thread tells what moved, checked against the instances' task metrics.
    let config = |state: &Path| {
        StreamsConfig::new(APP)
            .with_state_dir(state)
            .with_commit_interval(Duration::from_millis(50))
    };
    let topology = || streams_tests::wordcount::topology(true);
    let mut a = KafkaStreams::new(topology(), config(&state), engine.clone()).unwrap();
    a.start().unwrap();
    a.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    let mut b =
        KafkaStreams::new(topology(), config(&dir.path().join("b")), engine.clone()).unwrap();
    b.start().unwrap();
    produce(&engine, 500, 100, &mut expected);
    a.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    b.wait_until_caught_up(Duration::from_secs(30)).unwrap();
    // Both threads past the rebalance (a thread logs it before it reports its tasks).
    let active = |app: &KafkaStreams| {
        app.metrics()
            .tasks()
            .filter(|t| t.state != TaskState::Standby)
            .count() as u64
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while active(&a) + active(&b) != expected_tasks_len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<Line> = capture
        .take_lines()
        .iter()
        .filter_map(|l| parse(l))
        .collect();
    let last_rebalance = |app: &KafkaStreams| {
        let metrics = app.metrics();
        assert_eq!(metrics.threads.len(), 1);
        let name = metrics.threads[0].name.clone();
        let active = active(app);
        let line = lines
            .iter()
            .rev()
            .find(|l| l.message == "partitions assigned" && l.field("thread") == name)
            .unwrap_or_else(|| panic!("no rebalance line of {name}"));
        (line, active)
    };
    let (ra, active_a) = last_rebalance(&a);
    let (rb, active_b) = last_rebalance(&b);
    assert_eq!(active_a + active_b, expected_tasks_len());
    assert!(active_a > 0 && active_b > 0, "{active_a} / {active_b}");
    // The first instance had every task: all revoked, each resumed or closed, none opened.
    assert_eq!(ra.number("revoked_partitions"), expected_tasks_len());
    assert_eq!(ra.number("revoked_tasks"), expected_tasks_len());
    assert_eq!(ra.number("active_tasks"), active_a);
    assert_eq!(ra.number("assigned_partitions"), active_a);
    assert_eq!(ra.number("resumed"), active_a);
    assert_eq!(ra.number("closed"), expected_tasks_len() - active_a);
    assert_eq!(ra.number("opened"), 0);
    // The new instance opened what it got.
    assert_eq!(rb.number("revoked_partitions"), 0);
    assert_eq!(rb.number("active_tasks"), active_b);
    assert_eq!(rb.number("assigned_partitions"), active_b);
    assert_eq!(rb.number("opened"), active_b);
    assert_eq!(rb.number("resumed"), 0);
    assert!(rb.number("generation") >= ra.number("generation"));
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(final_counts(&engine), expected);
}

/// The word count's tasks: two sub-topologies over the input's partitions.
fn expected_tasks_len() -> u64 {
    2 * u64::from(PARTITIONS)
}
