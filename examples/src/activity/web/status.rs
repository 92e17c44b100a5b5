//! The instance's status: its state, throughput, lag and the instances of the app.

use std::sync::atomic::Ordering;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::merged::instances_of;
use super::state::{Shared, WebState};

/// The instance's status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Lifecycle state.
    pub state: String,
    /// This instance's address, or "local".
    pub instance: String,
    /// The live instances of the app that hold its tasks, this one included (their
    /// `application.server`, sorted), as of the latest rebalance seen here: the ones whose
    /// parts merged answers include. An instance that left or died is gone from it with
    /// the rebalance that removed it.
    pub instances: Vec<String>,
    /// Input events processed per second.
    pub events_per_sec: u64,
    /// Unprocessed input records.
    pub lag: u64,
    /// Input records processed: views, clicks and user profiles (the tasks that read
    /// `page_views` also read `users`).
    pub processed: u64,
    /// Final window results emitted.
    pub windows_closed: u64,
    /// Views and clicks this instance's generator has sent (0 without a generator).
    #[serde(default)]
    pub generated: u64,
    /// Records dropped by the app's operators, late records for closed windows above all
    /// (summed over the tasks this instance runs now): a number that is not 0 means some
    /// input is missing from the results.
    pub dropped_records: u64,
    /// Input records skipped (undeserializable or with an invalid timestamp, by the
    /// configured handlers).
    pub skipped_records: u64,
}

/// This instance's status.
pub(super) fn status_of(s: &WebState) -> Status {
    let state = s.streams.state();
    let totals = s.streams.metrics().total();
    Status {
        state: format!("{state:?}"),
        instance: s.me.as_ref().map_or("local".into(), ToString::to_string),
        instances: instances_of(s),
        events_per_sec: s.stats.events_per_sec(),
        lag: s.stats.lag(),
        processed: s.stats.processed(),
        windows_closed: s.stats.windows_closed.load(Ordering::Relaxed),
        generated: s.stats.generated.load(Ordering::Relaxed),
        dropped_records: totals.dropped_records,
        skipped_records: totals.skipped_records,
    }
}

/// `GET /api/status`.
pub(super) async fn status(State(s): State<Shared>) -> axum::Json<Status> {
    axum::Json(status_of(&s))
}
