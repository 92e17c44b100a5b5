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
//! calls [`drive()`] with its own test binary as the child; hence `pub(crate)` items and
//! only dependencies that both packages have (std, streams-core, serde_json,
//! tracing-subscriber).
//!
//! The suite's parts are in `fault_suite/`: the input (`input`), the app (`app`), the app
//! as a child process (`run`), the driver (`drive`), the output checks (`checks`), the
//! summary (`summary`), the command line (`cli`) and the errors (`error`). Each is
//! declared with `#[path]`, which finds it next to this file in both packages; this file
//! holds the constants they share and re-exports what the test uses, and the parts use
//! those names from here.

#[path = "fault_suite/app.rs"]
mod app;
#[path = "fault_suite/checks.rs"]
mod checks;
#[path = "fault_suite/cli.rs"]
mod cli;
#[path = "fault_suite/drive.rs"]
mod drive;
#[path = "fault_suite/error.rs"]
mod error;
#[path = "fault_suite/input.rs"]
mod input;
#[path = "fault_suite/run.rs"]
mod run;
#[path = "fault_suite/summary.rs"]
mod summary;

pub(crate) use checks::{OutputCheck, check_joined, check_page_counts, check_window_counts};
pub(crate) use cli::run_cli;
pub(crate) use drive::{DriveOptions, drive};
pub(crate) use error::SuiteError;
pub(crate) use input::{Event, generate_events};
pub(crate) use summary::Summary;

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
/// The tumbling windows' size.
const WINDOW_MS: i64 = 10_000;
/// The windows' grace: more than any record here is late (see [`generate_events`]).
const WINDOW_GRACE_MS: i64 = 5_000;
/// Views and clicks at most this far apart join.
const JOIN_MS: i64 = 3_000;
/// The join's grace.
const JOIN_GRACE_MS: i64 = 5_000;
/// What the app's lines for the driver start with.
const MARK: &str = "fault-suite:";

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
