//! The exactly-once fault suite (docs/RELIABILITY.md) in short: the app of
//! `examples/src/bin/fault_suite.rs` (a repartitioned count, a suppressed windowed count and
//! a stream-stream join) is SIGKILLed 5 times at seeded random moments while it processes
//! 200 000 records on the embedded engine, run to the end once more, and every output is
//! checked against the suite's own computation of the input. At-least-once must lose
//! nothing (its duplicates are printed); exactly-once must lose and duplicate nothing.
//!
//! The suite's source is compiled here as a module; the app runs as a child process which
//! is this test binary itself (`fault_suite_child_app`), as in `join_crash.rs`.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../examples/src/bin/fault_suite.rs"]
mod fault_suite;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use fault_suite::{
    CLICKS, DriveOptions, Event, JOINED, PAGE_COUNTS, PARTITIONS, Summary, VIEWS, WINDOW_COUNTS,
};
use streams_core::config::ProcessingGuarantee;

/// The child's command line (the suite's `app` arguments, one per line).
const CHILD_ENV: &str = "STREAMS_FAULT_SUITE_CHILD_ARGS";
/// Kills before the final run.
const KILLS: usize = 5;
/// Input records.
const RECORDS: usize = 200_000;

/// The child: the suite's `app` subcommand, killed by the parent or run to the end.
#[test]
fn fault_suite_child_app() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    fault_suite::init_logging();
    let args: Vec<String> = args.lines().map(str::to_string).collect();
    assert_eq!(fault_suite::run_cli(&args).unwrap(), 0);
}

fn run_suite(guarantee: ProcessingGuarantee) -> Summary {
    run_suite_with(guarantee, None)
}

/// On `streams serve`: three instances in one group through librdkafka, one of them killed
/// every 3 to 8 s (a killed member's partitions move after the 6 s session timeout; its
/// open transaction is aborted by the 10 s transaction timeout).
fn run_suite_on_serve(guarantee: ProcessingGuarantee) -> Summary {
    run_suite_with(guarantee, Some(3))
}

fn run_suite_with(guarantee: ProcessingGuarantee, instances: Option<usize>) -> Summary {
    run_suite_opts(guarantee, instances, None)
}

fn run_suite_opts(
    guarantee: ProcessingGuarantee,
    instances: Option<usize>,
    pause: Option<Duration>,
) -> Summary {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = DriveOptions::new(dir.path().join("suite"), KILLS, guarantee);
    opts.records = RECORDS;
    opts.seed = 17;
    opts.final_timeout = Duration::from_secs(600);
    opts.instances = instances;
    opts.pause_instead_of_kill = pause;
    if instances.is_some() {
        opts.kill_after_min = Duration::from_secs(3);
        opts.kill_after_max = Duration::from_secs(8);
    }
    let exe = std::env::current_exe().unwrap();
    let summary = fault_suite::drive(&opts, &|args| {
        let mut c = Command::new(&exe);
        c.args([
            "--exact",
            "fault_suite_child_app",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, args.join("\n"))
        // The tail of a child's log that a failure shows must hold its error, not a
        // backtrace.
        .env("RUST_BACKTRACE", "0");
        c
    })
    .unwrap_or_else(|e| panic!("{e}"));
    println!("{summary}");
    assert_eq!(summary.records_in, RECORDS);
    let (kills, pauses) = if pause.is_some() {
        (0, KILLS)
    } else {
        (KILLS, 0)
    };
    assert_eq!((summary.kills, summary.pauses), (kills, pauses));
    // Every output was produced (an empty one would pass nothing).
    for (topic, check) in &summary.outputs {
        assert!(check.records > 0, "{topic}: no output");
    }
    let mid_run = summary.to_json()["kills_while_processing"]
        .as_u64()
        .unwrap();
    assert!(
        pause.is_some() || mid_run > 0,
        "no kill came while the app processed: {summary}"
    );
    summary
}

#[test]
fn at_least_once_loses_nothing_across_kills() {
    let s = run_suite(ProcessingGuarantee::AtLeastOnce);
    assert_eq!(s.lost(), 0, "{:#}", s.to_json());
    println!(
        "at_least_once: {} results duplicated over {} kills",
        s.duplicated(),
        s.kills
    );
}

#[test]
fn exactly_once_v2_loses_and_duplicates_nothing_across_kills() {
    let s = run_suite(ProcessingGuarantee::ExactlyOnceV2);
    assert_eq!(s.lost(), 0, "{:#}", s.to_json());
    assert_eq!(s.duplicated(), 0, "{:#}", s.to_json());
}

/// Zombies: two instances on `streams serve`, one of them stopped (`SIGSTOP`) for 12 s
/// (past its 6 s session timeout and 10 s transaction timeout: the group moves its tasks)
/// and resumed, 5 times; whatever a zombie writes after it resumes must stay invisible,
/// so the outputs hold every result exactly once.
#[test]
fn on_streams_serve_a_paused_zombie_is_fenced_and_nothing_it_writes_is_visible() {
    let s = run_suite_opts(
        ProcessingGuarantee::ExactlyOnceV2,
        Some(2),
        Some(Duration::from_secs(12)),
    );
    assert_eq!(s.lost(), 0, "{:#}", s.to_json());
    assert_eq!(s.duplicated(), 0, "{:#}", s.to_json());
}

#[test]
fn on_streams_serve_exactly_once_v2_loses_and_duplicates_nothing_across_kills() {
    let s = run_suite_on_serve(ProcessingGuarantee::ExactlyOnceV2);
    assert_eq!(s.lost(), 0, "{:#}", s.to_json());
    assert_eq!(s.duplicated(), 0, "{:#}", s.to_json());
}

// The input and the checks themselves.

#[test]
fn the_input_is_deterministic_sized_and_ends_with_far_sentinels() {
    let a = fault_suite::generate_events(RECORDS, 5, 1_000_000);
    assert_eq!(a, fault_suite::generate_events(RECORDS, 5, 1_000_000));
    assert_ne!(a, fault_suite::generate_events(RECORDS, 6, 1_000_000));
    assert_eq!(a.values().map(Vec::len).sum::<usize>(), RECORDS);
    let max_body = a
        .values()
        .flat_map(|l| l[..l.len() - 1].iter())
        .map(|e| e.ts)
        .max()
        .unwrap();
    for topic in [VIEWS, CLICKS] {
        for p in 0..PARTITIONS {
            let list = &a[&(topic, p)];
            assert!(list.len() > 1_000, "{topic}/{p}: {}", list.len());
            let last = list.last().unwrap();
            // An hour past the views (clicks come up to 2 s after their view).
            assert!(last.ts >= max_body + 3_598_000, "{topic}/{p}");
            assert_eq!(
                streams_core::partitioner::partition_for_key(last.user.as_bytes(), PARTITIONS),
                p
            );
        }
    }
    // Some views are out of order, by less than the windows' grace (5 s).
    let mut late = 0;
    for p in 0..PARTITIONS {
        let mut max = i64::MIN;
        for e in &a[&(VIEWS, p)] {
            if e.ts < max {
                late += 1;
                assert!(max - e.ts <= 2_000, "{e:?} is {} ms late", max - e.ts);
            }
            max = max.max(e.ts);
        }
    }
    assert!(late > 100, "{late} late views");
}

fn ev(topic: &'static str, user: &str, value: &str, ts: i64) -> Event {
    Event {
        topic,
        user: user.to_string(),
        value: value.to_string(),
        ts,
    }
}

/// A small input whose results are known by hand: /p/1 viewed twice and /p/2 once by
/// closed windows of a and b; a's click joins a's second view only (the first is 3.5 s
/// before it); z's far view closes every other window (its own stays open).
fn small_input() -> BTreeMap<(&'static str, u32), Vec<Event>> {
    let mut m = BTreeMap::new();
    m.insert(
        (VIEWS, 0),
        vec![
            ev(VIEWS, "a", "v0:/p/1", 1_000),
            ev(VIEWS, "a", "v1:/p/1", 2_000),
            ev(VIEWS, "b", "v2:/p/2", 12_000),
            ev(VIEWS, "z", "v3:/p/9", 100_000),
        ],
    );
    m.insert((CLICKS, 0), vec![ev(CLICKS, "a", "c0", 4_500)]);
    m
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_checks_find_lost_and_duplicated_results() {
    let input = small_input();
    let lost_dup = |c: fault_suite::OutputCheck| (c.lost, c.duplicated);

    let pages = [("/p/1", "1"), ("/p/1", "2"), ("/p/2", "1"), ("/p/9", "1")];
    let check = |r: &[(&str, &str)]| lost_dup(fault_suite::check_page_counts(&input, &kv(r)));
    assert_eq!(check(&pages), (0, 0));
    assert_eq!(check(&pages[1..]), (0, 0), "only the last count matters");
    assert_eq!(check(&pages[..3]), (1, 0), "/p/9 missing");
    assert_eq!(
        check(&[pages[0], pages[2], pages[3]]),
        (1, 0),
        "/p/1 ends at 1"
    );
    assert_eq!(
        check(&[pages[0], pages[1], pages[1], pages[2], pages[3]]),
        (0, 1),
        "2 repeated"
    );
    assert_eq!(
        check(&[pages[0], pages[1], ("/p/1", "3"), pages[2], pages[3]]),
        (0, 1),
        "counted 3"
    );
    assert_eq!(
        check(&[pages[0], pages[1], pages[2], pages[3], ("/p/7", "1")]),
        (0, 1),
        "never viewed"
    );

    let windows = [("a@0", "2"), ("b@10000", "1")];
    let check = |r: &[(&str, &str)]| lost_dup(fault_suite::check_window_counts(&input, &kv(r)));
    assert_eq!(check(&windows), (0, 0));
    assert_eq!(check(&windows[..1]), (1, 0), "b's window missing");
    assert_eq!(
        check(&[("a@0", "1"), windows[1]]),
        (1, 0),
        "a's count short"
    );
    assert_eq!(
        check(&[windows[0], windows[0], windows[1]]),
        (0, 1),
        "twice"
    );
    assert_eq!(check(&[("a@0", "3"), windows[1]]), (0, 1), "a's count over");
    assert_eq!(
        check(&[windows[0], windows[1], ("z@100000", "1")]),
        (0, 1),
        "z's window is still open"
    );

    // c0 at 4.5 s joins v1 (2 s) and not v0 (1 s): at most 3 s apart.
    let joined = [("a", "v1:/p/1|c0")];
    let check = |r: &[(&str, &str)]| lost_dup(fault_suite::check_joined(&input, &kv(r)));
    assert_eq!(check(&joined), (0, 0));
    assert_eq!(check(&[]), (1, 0));
    assert_eq!(check(&[joined[0], joined[0]]), (0, 1));
    assert_eq!(check(&[joined[0], ("a", "v0:/p/1|c0")]), (0, 1));
}

#[test]
fn summary_percentiles_and_verdicts() {
    let input = small_input();
    let mut s = Summary {
        engine: "embedded",
        instances: 1,
        pauses: 0,
        guarantee: ProcessingGuarantee::ExactlyOnceV2,
        kills: 3,
        records_in: 5,
        outputs: BTreeMap::new(),
        recoveries: [40, 10, 30, 20].map(Duration::from_millis).to_vec(),
        kill_points: Vec::new(),
        uncommitted_output_records: 0,
        final_run_dropped: 0,
        final_run: Duration::ZERO,
    };
    assert_eq!(s.recovery_ms(50.0), Some(20));
    assert_eq!(s.recovery_ms(99.0), Some(40));
    assert!(s.passed());
    s.outputs.insert(
        JOINED,
        fault_suite::check_joined(&input, &kv(&[("a", "v1:/p/1|c0"), ("a", "v1:/p/1|c0")])),
    );
    assert!(!s.passed(), "a duplicate fails exactly-once");
    s.guarantee = ProcessingGuarantee::AtLeastOnce;
    assert!(s.passed(), "and not at-least-once");
    s.outputs.insert(
        WINDOW_COUNTS,
        fault_suite::check_window_counts(&input, &kv(&[])),
    );
    assert!(!s.passed(), "a loss fails both");
    let json = s.to_json();
    assert_eq!(json["lost"], 2);
    assert_eq!(json["duplicated"], 1);
    assert_eq!(json["recovery_p50_ms"], 20);
    assert!(json.get(PAGE_COUNTS).is_none());
}
