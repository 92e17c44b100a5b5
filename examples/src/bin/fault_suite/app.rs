//! The app: its topology, and one instance of it run on the embedded engine or on a
//! Kafka-protocol broker, printing its progress for the driver.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use streams_core::config::{ClientPrefix, ProcessingGuarantee};
use streams_core::dsl::{BufferConfig, Suppressed};
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TaskState};
use streams_core::window::TimeWindows;

use super::input::page_of;
use super::{
    APP_ID, CLICKS, JOIN_GRACE_MS, JOIN_MS, JOINED, MARK, PAGE_COUNTS, SuiteError, VIEWS,
    WINDOW_COUNTS, WINDOW_GRACE_MS, WINDOW_MS,
};

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
