//! The activity app's HTTP side: a JSON API over interactive queries and the live
//! dashboard, served by [axum](https://docs.rs/axum).
//!
//! Every instance answers for every key. A request about one key (a page's views, a
//! user's sessions) goes to the instance that owns the key
//! ([`KafkaStreams::query_metadata_for_key`]); answers that cover all keys (top pages,
//! click-through rates, alerts, the dashboard) merge the local part of every instance
//! (`/api/local/...`), found with [`KafkaStreams::metadata_for_all_clients`].
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the dashboard (HTML, JS and CSS ship in the binary) |
//! | `GET /api/status` | state, events/s, lag, records processed, windows closed, events generated here, records dropped (late) and skipped |
//! | `GET /api/dashboard` | everything the dashboard draws, in one answer |
//! | `GET /api/top-pages?window=<start ms>&n=10` | views per page in a window (default: the latest) |
//! | `GET /api/ctr?window=<start ms>&n=10` | click-through rate per page in a window (default: the latest settled) |
//! | `GET /api/countries?window=<start ms>&n=10` | views per country in a window (default: the latest) |
//! | `GET /api/categories?window=<start ms>&n=10` | click-through rate per page category in a window (default: the latest settled) |
//! | `GET /api/pages/{page}/views?minutes=15` | a page's views per minute |
//! | `GET /api/users/{user}/sessions` | a user's sessions |
//! | `GET /api/alerts?limit=20` | the latest alert of each alerted user, newest first |
//! | `GET /api/local/windows?from=<ms>&to=<ms>` | between instances: this instance's per-minute windows starting in `[from, to]`, and the partitions of each store they cover |
//! | `GET /api/local/alerts` | between instances: this instance's alerts, and the partitions they cover |
//!
//! # Parameters and errors
//!
//! Every query parameter is checked before anything is read or forwarded; a bad one is
//! answered `400` with `{"error": "<reason>", "parameter": "<name>"}`, the reason naming
//! the accepted values:
//!
//! - `window`: a window start, a multiple of 60 000 (ms) between 0 and
//!   [`MAX_WINDOW_START`] (the last minute of the year 9999);
//! - `n`, `limit`: a whole number between 1 and [`MAX_RESULTS`];
//! - `minutes`: a whole number, at least 1; more than the stores keep
//!   ([`ActivityConfig::retention`](super::ActivityConfig::retention), a day) is answered as
//!   everything they keep;
//! - `from`, `to`: whole numbers with `0 <= from <= to <=` [`OPEN_END`].
//!
//! A parameter given twice is an error; parameters the route does not know are ignored
//! (as axum does by default), so that clients may add their own (a cache buster, say). A
//! path segment that is not UTF-8 once percent-decoded is answered `400` as well, an
//! unknown route `404`, both with a JSON `error`.
//!
//! Calls to other instances take at most [`PEER_TIMEOUT`] and read at most
//! [`MAX_PEER_RESPONSE`] bytes. A forwarded request whose owner cannot be reached (or
//! does not answer in time, or answers `503` itself) is answered `503`: the group will
//! move its partitions, and the client may retry; an answer that is too large, malformed
//! or another error is answered `502`. `503` also means that the stores cannot be queried
//! right now (the app is starting or rebalancing, say).
//!
//! # Answers during rebalances: complete or `503`
//!
//! An answer is complete or it is not given. A per-key answer comes from the instance
//! running the key's partition with its state restored; while that task restores, or moves
//! (its owner left or died and no live instance announced it yet), the answer is `503`
//! with the reason, never a connection error to the instance that had it. A merged answer
//! (top pages, click-through rates, countries, categories, alerts, the dashboard) is given
//! only when its parts, one per instance, cover every partition of each store it reads
//! exactly once ([`LocalWindows::partitions`], [`LocalAlerts::partitions`],
//! [`Coverage`]); otherwise `503` naming the missing partitions and the instances that did
//! not answer. Every `503` carries `Retry-After: 1` ([`RETRY_AFTER_SECS`]).
//!
//! # Parts
//!
//! The API is built of: the handlers' shared state (`state`), error answers (`error`),
//! the checks of query parameters (`params`), calls to other instances (`peer`), this
//! instance's part of merged answers (`local`) and their merging (`merged`), per-key
//! answers (`keyed`), per-window answers (`windows`), the status (`status`) and the
//! dashboard's data (`summary`); the dashboard's runtime view (the topology picture and
//! the store sizes) is the sibling module `dashboard`.
//!
//! [`KafkaStreams::query_metadata_for_key`]: streams_core::runtime::KafkaStreams::query_metadata_for_key
//! [`KafkaStreams::metadata_for_all_clients`]: streams_core::runtime::KafkaStreams::metadata_for_all_clients
//! [`Coverage`]: streams_core::query::Coverage

mod error;
mod keyed;
mod local;
mod merged;
mod params;
mod peer;
mod state;
mod status;
mod summary;
mod windows;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::routing::get;

pub use error::RETRY_AFTER_SECS;
pub use keyed::{PageTimeline, Sessions};
pub use local::{CategoryStats, LocalAlerts, LocalWindows, PageStats, WINDOW_STORES};
pub use params::{MAX_RESULTS, MAX_WINDOW_START, OPEN_END};
pub use peer::{MAX_PEER_RESPONSE, PEER_TIMEOUT, PeerError, http_get};
pub use state::{Stats, WebState};
pub use status::Status;
pub use summary::{Dashboard, DashboardAlert, Series, Timeline, dashboard_of};
pub use windows::{CategoryWindowStats, CountryViews, CtrWindow, TopPages, now_ms, settled_until};

use error::{ApiError, echo};
use state::Shared;

const INDEX_HTML: &str = include_str!("../../static/index.html");
const DASHBOARD_JS: &str = include_str!("../../static/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../static/dashboard.css");

/// The app's routes.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    INDEX_HTML,
                )
            }),
        )
        .route(
            "/dashboard.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], DASHBOARD_JS) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], DASHBOARD_CSS) }),
        )
        .route("/api/status", get(status::status))
        .route("/api/dashboard", get(summary::dashboard))
        .route("/api/top-pages", get(windows::top_pages))
        .route("/api/ctr", get(windows::ctr))
        .route("/api/countries", get(windows::countries))
        .route("/api/categories", get(windows::categories))
        .route("/api/pages/{page}/views", get(keyed::page_views))
        .route("/api/users/{user}/sessions", get(keyed::user_sessions))
        .route("/api/alerts", get(merged::alerts))
        .route("/api/local/windows", get(local::local_windows))
        .route("/api/local/alerts", get(local::local_alerts))
        .merge(super::dashboard::routes())
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such route: {} (docs/ACTIVITY.md lists them)",
            echo(uri.path())
        ),
    )
}
