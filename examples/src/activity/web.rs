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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use streams_core::query::{Coverage, HostInfo};
use streams_core::runtime::{KafkaStreams, StreamsState};
use streams_core::serde::StringSerde;
use streams_core::state::{ReadOnlySessionStore, ReadOnlyWindowStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    Activity, ActivityConfig, Alert, CATEGORY_CTR_STORE, COUNTRY_VIEW_COUNTS_STORE, ClickThrough,
    PAGE_CATALOGUE_STORE, PAGE_CTR_STORE, PAGE_VIEW_COUNTS_STORE, PageInfo, RECENT_ALERTS_STORE,
    UNKNOWN, USER_SESSIONS_STORE,
};

const INDEX_HTML: &str = include_str!("../../static/index.html");
const DASHBOARD_JS: &str = include_str!("../../static/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../static/dashboard.css");

/// The window size of the per-minute aggregations.
const MINUTE: i64 = 60_000;
/// The largest `window` the API accepts: the start of the last minute of the year 9999
/// (UTC), in ms since the epoch. Window starts are multiples of a minute from 0 to here.
pub const MAX_WINDOW_START: i64 = 253_402_300_740_000;
/// The largest `n` and `limit` the API accepts.
pub const MAX_RESULTS: usize = 1000;
/// The end of open time ranges (the windows "from an hour ago on"), and the largest
/// `from` and `to` of `/api/local/windows`: far beyond any event time, and far enough
/// from `i64::MAX` that adding a window size cannot overflow.
pub const OPEN_END: i64 = i64::MAX / 2;
/// How long a call to another instance may take, connecting and reading included.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read from another instance (status line and headers included).
/// An instance's part of the windows of the last hour is about 100 bytes per page and
/// minute: 6 MB for 1 000 pages viewed every minute, all on one instance.
pub const MAX_PEER_RESPONSE: usize = 16 << 20;
/// How much of a bad parameter value or path an error answer repeats.
const ECHO_LIMIT: usize = 64;
/// Marks a request forwarded by another instance: it is answered here, never forwarded
/// again (two instances with different views of a rebalance would otherwise pass it back
/// and forth).
const FORWARDED: &str = "x-activity-forwarded";

/// Throughput figures sampled once a second by [`Stats::sample`].
#[derive(Debug, Default)]
pub struct Stats {
    /// Input events processed per second (last sample).
    events_per_sec: AtomicU64,
    /// Input events processed in all.
    processed: AtomicU64,
    /// Unprocessed input records (consumer lag) at the last sample.
    lag: AtomicU64,
    /// Final window results emitted so far (updated by the app).
    pub windows_closed: AtomicU64,
    /// Views and clicks this instance's generator has sent (updated by the app).
    pub generated: AtomicU64,
    last: Mutex<Option<(Instant, u64)>>,
}

impl Stats {
    /// Takes a sample: `processed` input events so far and the current `lag`.
    pub fn sample(&self, processed: u64, lag: i64) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, before)) = *last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let rate = processed.saturating_sub(before) as f64 / secs;
                self.events_per_sec
                    .store(rate.round() as u64, Ordering::Relaxed);
            }
        }
        *last = Some((now, processed));
        self.processed.store(processed, Ordering::Relaxed);
        self.lag.store(lag.max(0) as u64, Ordering::Relaxed);
    }

    /// Input events processed per second at the last sample.
    pub fn events_per_sec(&self) -> u64 {
        self.events_per_sec.load(Ordering::Relaxed)
    }

    /// Input events processed in all, at the last sample.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Consumer lag at the last sample.
    pub fn lag(&self) -> u64 {
        self.lag.load(Ordering::Relaxed)
    }
}

/// What the HTTP handlers share.
pub struct WebState {
    /// The running app instance.
    pub streams: Arc<KafkaStreams>,
    /// Throughput figures.
    pub stats: Arc<Stats>,
    /// This instance's `application.server`.
    pub me: Option<HostInfo>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState").field("me", &self.me).finish()
    }
}

type Shared = Arc<WebState>;

/// An error answer: a status and a reason (and the query parameter at fault, if one is),
/// sent as JSON `{"error": ..., "parameter": ...}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    reason: String,
    parameter: Option<&'static str>,
}

/// What a `503` answer's `Retry-After` header says, in seconds: rebalances and restores
/// take seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            parameter: None,
        }
    }

    /// A `503`: the answer cannot be complete right now (a task restores or moves, an
    /// instance does not answer); the client may retry.
    fn retry(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }

    /// A `400` about query parameter `name`.
    fn parameter(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
            parameter: Some(name),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.parameter {
            Some(name) => serde_json::json!({ "error": self.reason, "parameter": name }),
            None => serde_json::json!({ "error": self.reason }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<streams_core::error::StreamsError> for ApiError {
    fn from(e: streams_core::error::StreamsError) -> Self {
        // Stores move during rebalances: the client may retry.
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl From<PeerError> for ApiError {
    fn from(e: PeerError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// At most [`ECHO_LIMIT`] characters of `s`, for an error answer (which must not grow
/// with the request).
fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_LIMIT) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

/// A request's query parameters, percent-decoded, in order. The handlers read the ones
/// they know through the checked accessors below and ignore the others.
#[derive(Debug)]
struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Decoding is lossy (bad UTF-8 becomes U+FFFD), so this fails only on a query
        // string `serde_urlencoded` cannot split, if any.
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?;
        Ok(Params(pairs))
    }
}

impl Params {
    /// The value of `name`, if given; an error if given more than once.
    fn one(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::parameter(name, format!("{name} is given twice")));
        }
        Ok(first)
    }

    /// The integer `name` if given, which must be in `[min, max]`; `accepted` describes the
    /// accepted values in the error answer.
    fn int(
        &self,
        name: &'static str,
        min: i64,
        max: i64,
        accepted: &str,
    ) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.one(name)? else {
            return Ok(None);
        };
        match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(ApiError::parameter(
                name,
                format!("{name} must be {accepted}, not \"{}\"", echo(raw)),
            )),
        }
    }

    /// `window`: a window start (a multiple of a minute in `[0, MAX_WINDOW_START]`).
    fn window(&self) -> Result<Option<i64>, ApiError> {
        let accepted = format!(
            "a window start: a multiple of {MINUTE} (ms since the epoch) between 0 and \
             {MAX_WINDOW_START}"
        );
        let window = self.int("window", 0, MAX_WINDOW_START, &accepted)?;
        match window {
            Some(w) if w % MINUTE != 0 => Err(ApiError::parameter(
                "window",
                format!("window must be {accepted}, not \"{w}\""),
            )),
            _ => Ok(window),
        }
    }

    /// A number of results (`n`, `limit`): in `[1, MAX_RESULTS]`, `default` if not given.
    fn count(&self, name: &'static str, default: usize) -> Result<usize, ApiError> {
        let max = i64::try_from(MAX_RESULTS).unwrap_or(i64::MAX);
        let accepted = format!("a whole number between 1 and {MAX_RESULTS}");
        Ok(self
            .int(name, 1, max, &accepted)?
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default))
    }

    /// `minutes`: at least 1, `default` if not given; more than the retention means the
    /// retention (the stores keep nothing older).
    fn minutes(&self, default: i64) -> Result<i64, ApiError> {
        let retention = retention_minutes();
        let accepted = format!(
            "a whole number of minutes, at least 1 (more than {retention}, the retention, \
             means {retention})"
        );
        Ok(self
            .int("minutes", 1, i64::MAX, &accepted)?
            .unwrap_or(default)
            .min(retention))
    }

    /// `from` and `to` of `/api/local/windows`: both required, `0 <= from <= to <=
    /// OPEN_END`.
    fn range(&self) -> Result<(i64, i64), ApiError> {
        let accepted = format!("a time in ms between 0 and {OPEN_END}");
        let from = self.int("from", 0, OPEN_END, &accepted)?;
        let to = self.int("to", 0, OPEN_END, &accepted)?;
        match (from, to) {
            (Some(from), Some(to)) if from <= to => Ok((from, to)),
            (Some(from), Some(to)) => Err(ApiError::parameter(
                "to",
                format!("to must not be before from ({to} < {from})"),
            )),
            (None, _) => Err(ApiError::parameter(
                "from",
                format!("from ({accepted}) is required"),
            )),
            (_, None) => Err(ApiError::parameter(
                "to",
                format!("to ({accepted}) is required"),
            )),
        }
    }
}

/// The stores' retention in minutes (the app runs with the default configuration).
fn retention_minutes() -> i64 {
    let secs = ActivityConfig::default().retention.as_secs();
    i64::try_from(secs / 60).unwrap_or(i64::MAX).max(1)
}

/// A path segment (`{page}`, `{user}`): a `400` when it is not UTF-8 once decoded.
fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(s)| s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

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
        .route("/api/status", get(status))
        .route("/api/dashboard", get(dashboard))
        .route("/api/top-pages", get(top_pages))
        .route("/api/ctr", get(ctr))
        .route("/api/countries", get(countries))
        .route("/api/categories", get(categories))
        .route("/api/pages/{page}/views", get(page_views))
        .route("/api/users/{user}/sessions", get(user_sessions))
        .route("/api/alerts", get(alerts))
        .route("/api/local/windows", get(local_windows))
        .route("/api/local/alerts", get(local_alerts))
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

fn status_of(s: &WebState) -> Status {
    let state = s.streams.state();
    let totals = s.streams.metrics().total();
    Status {
        state: format!("{state:?}"),
        instance: s.me.as_ref().map_or("local".into(), ToString::to_string),
        instances: instances_of(s),
        events_per_sec: s.stats.events_per_sec(),
        lag: s.stats.lag(),
        processed: s.stats.processed.load(Ordering::Relaxed),
        windows_closed: s.stats.windows_closed.load(Ordering::Relaxed),
        generated: s.stats.generated.load(Ordering::Relaxed),
        dropped_records: totals.dropped_records,
        skipped_records: totals.skipped_records,
    }
}

async fn status(State(s): State<Shared>) -> axum::Json<Status> {
    axum::Json(status_of(&s))
}

/// One window of one page: resolved views, clicked views, attributed clicks and the
/// click-through rate (see [`ClickThrough`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageStats {
    /// The page.
    pub page: String,
    /// Window start (ms).
    pub start: i64,
    /// Resolved views in the window.
    pub views: i64,
    /// Views followed by a click within the click window.
    pub clicked_views: i64,
    /// Clicks attributed to the views.
    pub clicks: i64,
    /// clicked views / views (0 without views).
    pub ctr: f64,
    /// Views of the page in the window (by the view counts) that are not resolved yet:
    /// unclicked so far and less than the click window old. Set in merged answers (0 in
    /// `/api/local/windows`).
    #[serde(default)]
    pub pending_views: i64,
}

/// One window of one page category, as [`PageStats`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryStats {
    /// The category.
    pub category: String,
    /// Window start (ms).
    pub start: i64,
    /// Resolved views in the window.
    pub views: i64,
    /// Views followed by a click within the click window.
    pub clicked_views: i64,
    /// Clicks attributed to the views.
    pub clicks: i64,
    /// clicked views / views (0 without views).
    pub ctr: f64,
    /// Views of the category's pages in the window not resolved yet (the pages' view
    /// counts, by the page catalogue, minus the resolved views).
    #[serde(default)]
    pub pending_views: i64,
}

/// The local part of the per-minute stores for windows starting in `[from, to]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LocalWindows {
    /// (page, window start, views) from the view counts.
    pub views: Vec<(String, i64, i64)>,
    /// Per page and window from the click-through store.
    pub ctr: Vec<PageStats>,
    /// (country, window start, views) from the country counts.
    #[serde(default)]
    pub countries: Vec<(String, i64, i64)>,
    /// Per category and window from the category click-through store.
    #[serde(default)]
    pub categories: Vec<CategoryStats>,
    /// Store -> the partitions (tasks) of it this part covers: those running on the
    /// instance that answered (see [`WINDOW_STORES`]).
    #[serde(default)]
    pub partitions: BTreeMap<String, Vec<u32>>,
}

/// The stores `/api/local/windows` reads: a merged answer must cover every partition of
/// each.
pub const WINDOW_STORES: [&str; 4] = [
    PAGE_VIEW_COUNTS_STORE,
    PAGE_CTR_STORE,
    COUNTRY_VIEW_COUNTS_STORE,
    CATEGORY_CTR_STORE,
];

/// This instance's alerts, and the partitions of the alerts store they cover.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LocalAlerts {
    /// The latest alert of each user of those partitions.
    pub alerts: Vec<Alert>,
    /// The partitions (tasks) of [`RECENT_ALERTS_STORE`] covered.
    pub partitions: Vec<u32>,
}

/// The window store `name` of this instance's running tasks, and the partitions it covers;
/// `None` when none of its tasks runs here (an empty part, covering nothing).
fn local_window_store<V: 'static>(
    s: &WebState,
    name: &str,
) -> Result<Option<streams_core::query::WindowStoreView<String, V>>, ApiError> {
    if s.streams.store_partitions(name)?.running.is_empty() {
        return Ok(None);
    }
    Ok(Some(s.streams.window_store::<String, V>(name)?))
}

/// Every window of `view` starting in `[from, to]` (none without a view).
fn fetch_windows<V: 'static>(
    view: Option<&streams_core::query::WindowStoreView<String, V>>,
    from: i64,
    to: i64,
) -> Result<Vec<(streams_core::window::Windowed<String>, V)>, ApiError> {
    Ok(match view {
        Some(v) => v.fetch_all(from, to)?,
        None => Vec::new(),
    })
}

fn local_windows_of(s: &WebState, from: i64, to: i64) -> Result<LocalWindows, ApiError> {
    let counts = local_window_store::<i64>(s, PAGE_VIEW_COUNTS_STORE)?;
    let ctr = local_window_store::<ClickThrough>(s, PAGE_CTR_STORE)?;
    let countries = local_window_store::<i64>(s, COUNTRY_VIEW_COUNTS_STORE)?;
    let categories = local_window_store::<ClickThrough>(s, CATEGORY_CTR_STORE)?;
    let covered = |name: &str, partitions: Option<&[u32]>| {
        (name.to_string(), partitions.unwrap_or_default().to_vec())
    };
    let partitions = BTreeMap::from([
        covered(
            PAGE_VIEW_COUNTS_STORE,
            counts.as_ref().map(|v| v.partitions()),
        ),
        covered(PAGE_CTR_STORE, ctr.as_ref().map(|v| v.partitions())),
        covered(
            COUNTRY_VIEW_COUNTS_STORE,
            countries.as_ref().map(|v| v.partitions()),
        ),
        covered(
            CATEGORY_CTR_STORE,
            categories.as_ref().map(|v| v.partitions()),
        ),
    ]);
    Ok(LocalWindows {
        views: fetch_windows(counts.as_ref(), from, to)?
            .into_iter()
            .map(|(w, n)| (w.key, w.window.start, n))
            .collect(),
        ctr: fetch_windows(ctr.as_ref(), from, to)?
            .into_iter()
            .map(|(w, a)| PageStats {
                page: w.key,
                start: w.window.start,
                views: a.views,
                clicked_views: a.clicked_views,
                clicks: a.clicks,
                ctr: a.click_through_rate().unwrap_or(0.0),
                pending_views: 0,
            })
            .collect(),
        countries: fetch_windows(countries.as_ref(), from, to)?
            .into_iter()
            .map(|(w, n)| (w.key, w.window.start, n))
            .collect(),
        categories: fetch_windows(categories.as_ref(), from, to)?
            .into_iter()
            .map(|(w, a)| CategoryStats {
                category: w.key,
                start: w.window.start,
                views: a.views,
                clicked_views: a.clicked_views,
                clicks: a.clicks,
                ctr: a.click_through_rate().unwrap_or(0.0),
                pending_views: 0,
            })
            .collect(),
        partitions,
    })
}

/// Page -> category, from the page catalogue (a global store: every instance holds all of
/// it); empty if it cannot be read.
fn catalogue_of(s: &WebState) -> BTreeMap<String, String> {
    s.streams
        .key_value_store::<String, PageInfo>(PAGE_CATALOGUE_STORE)
        .and_then(|c| c.all())
        .map(|all| all.into_iter().map(|(k, p)| (k, p.category)).collect())
        .unwrap_or_default()
}

async fn local_windows(State(s): State<Shared>, q: Params) -> ApiResult<LocalWindows> {
    let (from, to) = q.range()?;
    Ok(axum::Json(local_windows_of(&s, from, to)?))
}

fn local_alerts_of(s: &WebState) -> Result<LocalAlerts, ApiError> {
    if s.streams
        .store_partitions(RECENT_ALERTS_STORE)?
        .running
        .is_empty()
    {
        return Ok(LocalAlerts::default());
    }
    let store = s
        .streams
        .key_value_store::<String, Alert>(RECENT_ALERTS_STORE)?;
    Ok(LocalAlerts {
        alerts: store.all()?.into_iter().map(|(_, a)| a).collect(),
        partitions: store.partitions().to_vec(),
    })
}

async fn local_alerts(State(s): State<Shared>) -> ApiResult<LocalAlerts> {
    Ok(axum::Json(local_alerts_of(&s)?))
}

/// Every instance of the app that holds tasks (by `application.server`), sorted.
fn hosts(s: &WebState) -> Vec<HostInfo> {
    let Ok(all) = s.streams.metadata_for_all_clients() else {
        return Vec::new();
    };
    let mut hosts: Vec<HostInfo> = all.into_iter().filter_map(|m| m.host).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

fn instances_of(s: &WebState) -> Vec<String> {
    hosts(s).iter().map(ToString::to_string).collect()
}

/// The other instances of the app (by `application.server`).
fn peers(s: &WebState) -> Vec<HostInfo> {
    let mut hosts = hosts(s);
    hosts.retain(|h| Some(h) != s.me.as_ref());
    hosts
}

/// Checks that the parts of a merged answer cover every partition of each store once:
/// `parts` holds, per store, the partitions each part covered; `failed` the instances that
/// did not answer. A `503` naming what is missing otherwise.
fn check_complete(
    s: &WebState,
    what: &str,
    parts: &BTreeMap<&str, Vec<Vec<u32>>>,
    failed: &[String],
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for (store, covered) in parts {
        let total = s.streams.store_partitions(store)?.partitions;
        let mut coverage = Coverage::new(total);
        for c in covered {
            coverage.add(c);
        }
        if coverage.is_complete() {
            continue;
        }
        let missing = coverage.missing();
        if !missing.is_empty() {
            problems.push(format!("{store} misses partitions {missing:?}"));
        }
        let twice = coverage.duplicated();
        if !twice.is_empty() {
            problems.push(format!(
                "{store} has partitions {twice:?} from two instances"
            ));
        }
        let unknown = coverage.unknown();
        if !unknown.is_empty() {
            problems.push(format!("{store} has no partitions {unknown:?}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut reason = format!(
        "incomplete {what}: {} (a rebalance or restore is under way)",
        problems.join("; ")
    );
    if !failed.is_empty() {
        reason.push_str(&format!("; not answering: {}", failed.join("; ")));
    }
    Err(ApiError::retry(reason))
}

/// Every instance's windows in `[from, to]`, merged; a `503` unless the parts cover every
/// partition of each of [`WINDOW_STORES`] once.
async fn all_windows(s: &WebState, from: i64, to: i64) -> Result<LocalWindows, ApiError> {
    let mut merged = local_windows_of(s, from, to)?;
    let mut parts: BTreeMap<&str, Vec<Vec<u32>>> = WINDOW_STORES
        .iter()
        .map(|store| {
            (
                *store,
                vec![merged.partitions.remove(*store).unwrap_or_default()],
            )
        })
        .collect();
    let mut failed = Vec::new();
    for peer in peers(s) {
        match get_json::<LocalWindows>(&peer, &format!("/api/local/windows?from={from}&to={to}"))
            .await
        {
            Ok(mut part) => {
                merged.views.extend(part.views);
                merged.ctr.extend(part.ctr);
                merged.countries.extend(part.countries);
                merged.categories.extend(part.categories);
                for (store, covered) in &mut parts {
                    covered.push(part.partitions.remove(*store).unwrap_or_default());
                }
            }
            Err(e) => {
                tracing::warn!("merged windows without {peer}: {e}");
                failed.push(e.to_string());
            }
        }
    }
    check_complete(s, "windows", &parts, &failed)?;
    Ok(merged)
}

/// Every instance's alerts, newest first; a `503` unless the parts cover every partition
/// of [`RECENT_ALERTS_STORE`] once.
async fn all_alerts(s: &WebState) -> Result<Vec<Alert>, ApiError> {
    let local = local_alerts_of(s)?;
    let mut alerts = local.alerts;
    let mut covered = vec![local.partitions];
    let mut failed = Vec::new();
    for peer in peers(s) {
        match get_json::<LocalAlerts>(&peer, "/api/local/alerts").await {
            Ok(part) => {
                alerts.extend(part.alerts);
                covered.push(part.partitions);
            }
            Err(e) => {
                tracing::warn!("merged alerts without {peer}: {e}");
                failed.push(e.to_string());
            }
        }
    }
    let parts = BTreeMap::from([(RECENT_ALERTS_STORE, covered)]);
    check_complete(s, "alerts", &parts, &failed)?;
    alerts.sort_by(|a, b| {
        b.window_end
            .cmp(&a.window_end)
            .then(b.clicks.cmp(&a.clicks))
            .then(a.user_id.cmp(&b.user_id))
    });
    Ok(alerts)
}

/// The start of the latest window with data among `views`, if any.
fn latest_window(views: &[(String, i64, i64)]) -> Option<i64> {
    views.iter().map(|(_, start, _)| *start).max()
}

/// The wall clock in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Views per page in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopPages {
    /// Window start (ms), `None` when there is no data yet.
    pub window_start: Option<i64>,
    /// Window end (ms).
    pub window_end: Option<i64>,
    /// (page, views), most viewed first.
    pub pages: Vec<(String, i64)>,
}

/// The windows to look at: one given window, or the last hour (to find the latest).
fn search_range(window: Option<i64>) -> (i64, i64) {
    match window {
        Some(w) => (w, w),
        None => (now_ms().saturating_sub(60 * MINUTE).max(0), OPEN_END),
    }
}

async fn top_pages(State(s): State<Shared>, q: Params) -> ApiResult<TopPages> {
    let (window, n) = (q.window()?, q.count("n", 10)?);
    let (from, to) = search_range(window);
    let all = all_windows(&s, from, to).await?;
    let window = window.or_else(|| latest_window(&all.views));
    // One count per page (instances' parts could overlap during a rebalance), added up
    // without overflowing whatever another instance sent.
    let mut per_page: BTreeMap<String, i64> = BTreeMap::new();
    for (page, start, views) in all.views {
        if Some(start) == window {
            let total = per_page.entry(page).or_default();
            *total = total.saturating_add(views);
        }
    }
    Ok(axum::Json(TopPages {
        window_start: window,
        window_end: window.map(|w| w.saturating_add(MINUTE)),
        pages: super::top_pages(per_page, n),
    }))
}

/// Click-through rates in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CtrWindow {
    /// Window start (ms), `None` when there is no data yet.
    pub window_start: Option<i64>,
    /// Window end (ms).
    pub window_end: Option<i64>,
    /// Whether every view of the window is resolved (see [`settled_until`]): the counts
    /// are final. A window that is not settled counts its clicked views, and only those of
    /// its views without a click whose 30 minutes have passed.
    pub settled: bool,
    /// Pages with the most views first.
    pub pages: Vec<PageStats>,
}

/// The last window start whose click-through rates are settled, from the latest window with
/// views: a view without a click is resolved once stream time passes its time + the click
/// window + the click grace, so every view of a window starting `window + click_window +
/// click_grace` (32 minutes by default) before the latest view's window is.
pub fn settled_until(views: &[(String, i64, i64)]) -> Option<i64> {
    let c = ActivityConfig::default();
    let wait = c.window_size + c.click_window + c.click_grace;
    let wait = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    latest_window(views).map(|latest| latest.saturating_sub(wait))
}

/// The window the click-through answers show unless asked for one: the latest settled
/// window with data, else the latest window with data.
fn ctr_default_window(
    starts: impl Iterator<Item = i64> + Clone,
    settled: Option<i64>,
) -> Option<i64> {
    starts
        .clone()
        .filter(|s| settled.is_some_and(|until| *s <= until))
        .max()
        .or_else(|| starts.max())
}

/// The views of each `label(page)` in `window`, from the view counts.
fn views_in_window(
    all: &LocalWindows,
    window: Option<i64>,
    label: impl Fn(&str) -> String,
) -> BTreeMap<String, i64> {
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for (page, start, views) in &all.views {
        if Some(*start) == window {
            let total = totals.entry(label(page)).or_default();
            *total = total.saturating_add(*views);
        }
    }
    totals
}

fn ctr_window(all: &LocalWindows, window: Option<i64>, n: usize) -> CtrWindow {
    let mut pages: BTreeMap<String, PageStats> = all
        .ctr
        .iter()
        .filter(|p| Some(p.start) == window)
        .map(|p| (p.page.clone(), p.clone()))
        .collect();
    // The pages' views not resolved yet, and the pages with views but none resolved.
    for (page, total) in views_in_window(all, window, str::to_string) {
        let stats = pages.entry(page.clone()).or_insert_with(|| PageStats {
            page,
            start: window.unwrap_or_default(),
            views: 0,
            clicked_views: 0,
            clicks: 0,
            ctr: 0.0,
            pending_views: 0,
        });
        stats.pending_views = total.saturating_sub(stats.views).max(0);
    }
    let mut pages: Vec<PageStats> = pages.into_values().collect();
    let all_views = |p: &PageStats| p.views.saturating_add(p.pending_views);
    pages.sort_by(|a, b| all_views(b).cmp(&all_views(a)).then(a.page.cmp(&b.page)));
    pages.truncate(n);
    let settled = settled_until(&all.views);
    CtrWindow {
        window_start: window,
        window_end: window.map(|w| w.saturating_add(MINUTE)),
        settled: window.is_some_and(|w| settled.is_some_and(|until| w <= until)),
        pages,
    }
}

async fn ctr(State(s): State<Shared>, q: Params) -> ApiResult<CtrWindow> {
    let (window, n) = (q.window()?, q.count("n", 10)?);
    let (from, to) = search_range(window);
    let all = all_windows(&s, from, to).await?;
    let window = window
        .or_else(|| ctr_default_window(all.ctr.iter().map(|p| p.start), settled_until(&all.views)));
    Ok(axum::Json(ctr_window(&all, window, n)))
}

/// Views per country in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CountryViews {
    /// Window start (ms), `None` when there is no data yet.
    pub window_start: Option<i64>,
    /// Window end (ms).
    pub window_end: Option<i64>,
    /// (country, views), most views first.
    pub countries: Vec<(String, i64)>,
}

fn country_window(all: &LocalWindows, window: Option<i64>, n: usize) -> CountryViews {
    let mut per_country: BTreeMap<String, i64> = BTreeMap::new();
    for (country, start, views) in &all.countries {
        if Some(*start) == window {
            let total = per_country.entry(country.clone()).or_default();
            *total = total.saturating_add(*views);
        }
    }
    CountryViews {
        window_start: window,
        window_end: window.map(|w| w.saturating_add(MINUTE)),
        countries: super::top_pages(per_country, n),
    }
}

async fn countries(State(s): State<Shared>, q: Params) -> ApiResult<CountryViews> {
    let (window, n) = (q.window()?, q.count("n", 10)?);
    let (from, to) = search_range(window);
    let all = all_windows(&s, from, to).await?;
    let window = window.or_else(|| all.countries.iter().map(|(_, start, _)| *start).max());
    Ok(axum::Json(country_window(&all, window, n)))
}

/// Click-through rates per page category in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryWindowStats {
    /// Window start (ms), `None` when there is no data yet.
    pub window_start: Option<i64>,
    /// Window end (ms).
    pub window_end: Option<i64>,
    /// As [`CtrWindow::settled`].
    pub settled: bool,
    /// Categories with the most views first.
    pub categories: Vec<CategoryStats>,
}

fn category_window(
    all: &LocalWindows,
    catalogue: &BTreeMap<String, String>,
    window: Option<i64>,
    n: usize,
) -> CategoryWindowStats {
    let mut categories: BTreeMap<String, CategoryStats> = all
        .categories
        .iter()
        .filter(|c| Some(c.start) == window)
        .map(|c| (c.category.clone(), c.clone()))
        .collect();
    let category_of = |page: &str| {
        catalogue
            .get(page)
            .cloned()
            .unwrap_or_else(|| UNKNOWN.to_string())
    };
    for (category, total) in views_in_window(all, window, category_of) {
        let stats = categories
            .entry(category.clone())
            .or_insert_with(|| CategoryStats {
                category,
                start: window.unwrap_or_default(),
                views: 0,
                clicked_views: 0,
                clicks: 0,
                ctr: 0.0,
                pending_views: 0,
            });
        stats.pending_views = total.saturating_sub(stats.views).max(0);
    }
    let mut categories: Vec<CategoryStats> = categories.into_values().collect();
    let all_views = |c: &CategoryStats| c.views.saturating_add(c.pending_views);
    categories.sort_by(|a, b| {
        all_views(b)
            .cmp(&all_views(a))
            .then(a.category.cmp(&b.category))
    });
    categories.truncate(n);
    let settled = settled_until(&all.views);
    CategoryWindowStats {
        window_start: window,
        window_end: window.map(|w| w.saturating_add(MINUTE)),
        settled: window.is_some_and(|w| settled.is_some_and(|until| w <= until)),
        categories,
    }
}

async fn categories(State(s): State<Shared>, q: Params) -> ApiResult<CategoryWindowStats> {
    let (window, n) = (q.window()?, q.count("n", 10)?);
    let (from, to) = search_range(window);
    let all = all_windows(&s, from, to).await?;
    let window = window.or_else(|| {
        ctr_default_window(
            all.categories.iter().map(|c| c.start),
            settled_until(&all.views),
        )
    });
    Ok(axum::Json(category_window(
        &all,
        &catalogue_of(&s),
        window,
        n,
    )))
}

/// A page's views per window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageTimeline {
    /// The page.
    pub page: String,
    /// (window start, views), oldest first.
    pub windows: Vec<(i64, i64)>,
}

async fn page_views(
    State(s): State<Shared>,
    page: Result<Path<String>, PathRejection>,
    q: Params,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let page = segment(page)?;
    let minutes = q.minutes(15)?;
    let partition = match key_owner(&s, &headers, PAGE_VIEW_COUNTS_STORE, &page)? {
        Owner::Here(partition) => partition,
        Owner::Elsewhere(owner) => return forward(&owner, &uri).await,
    };
    let from = now_ms()
        .saturating_sub(minutes.saturating_mul(MINUTE))
        .max(0);
    let store = s
        .streams
        .window_store::<String, i64>(PAGE_VIEW_COUNTS_STORE)?;
    // The task may have moved since the owner was looked up.
    if !store.covers(partition) {
        return Err(not_here(PAGE_VIEW_COUNTS_STORE, partition));
    }
    let windows = store.fetch_range(&page, from, OPEN_END)?;
    Ok(axum::Json(PageTimeline { page, windows }).into_response())
}

/// A user's sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sessions {
    /// The user.
    pub user_id: String,
    /// Sessions, by end.
    pub sessions: Vec<super::UserSession>,
}

async fn user_sessions(
    State(s): State<Shared>,
    user: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let user = segment(user)?;
    let partition = match key_owner(&s, &headers, USER_SESSIONS_STORE, &user)? {
        Owner::Here(partition) => partition,
        Owner::Elsewhere(owner) => return forward(&owner, &uri).await,
    };
    let store = s
        .streams
        .session_store::<String, Activity>(USER_SESSIONS_STORE)?;
    if !store.covers(partition) {
        return Err(not_here(USER_SESSIONS_STORE, partition));
    }
    let sessions = store
        .fetch(&user)?
        .into_iter()
        .map(|(w, a)| super::UserSession {
            user_id: w.key,
            start: w.window.start,
            end: w.window.end,
            duration_ms: w.window.end.saturating_sub(w.window.start),
            views: a.views,
            clicks: a.clicks,
        })
        .collect();
    Ok(axum::Json(Sessions {
        user_id: user,
        sessions,
    })
    .into_response())
}

async fn alerts(State(s): State<Shared>, q: Params) -> ApiResult<Vec<Alert>> {
    let limit = q.count("limit", 20)?;
    let mut all = all_alerts(&s).await?;
    all.truncate(limit);
    Ok(axum::Json(all))
}

/// Views per minute of the top pages over recent windows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timeline {
    /// Window starts, oldest first.
    pub starts: Vec<i64>,
    /// One series per page.
    pub series: Vec<Series>,
}

/// One page's views per window of a [`Timeline`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// The page.
    pub page: String,
    /// Views per window of [`Timeline::starts`].
    pub counts: Vec<i64>,
}

/// One answer with everything the dashboard draws.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dashboard {
    /// The instance's status.
    pub status: Status,
    /// Views per minute of the 5 most viewed pages over the last 15 windows with data.
    pub timeline: Timeline,
    /// Click-through rates of the 8 most viewed pages in the latest settled window (else
    /// the latest window with data).
    pub ctr: CtrWindow,
    /// Views per country (10 at most) in the latest complete window (the one before the
    /// latest with data).
    pub countries: CountryViews,
    /// Click-through rates per page category in the window of `ctr`.
    pub categories: CategoryWindowStats,
    /// Recent alerts, newest first (at most 20).
    pub alerts: Vec<DashboardAlert>,
}

/// An alert as the dashboard shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DashboardAlert {
    /// The user.
    pub user: String,
    /// Window start.
    pub start: i64,
    /// Window end.
    pub end: i64,
    /// Clicks in the window.
    pub clicks: i64,
}

/// Builds the dashboard's data from merged windows, the page catalogue (page -> category)
/// and alerts.
pub fn dashboard_of(
    status: Status,
    all: &LocalWindows,
    catalogue: &BTreeMap<String, String>,
    alerts: &[Alert],
) -> Dashboard {
    let mut starts: Vec<i64> = all.views.iter().map(|(_, s, _)| *s).collect();
    starts.sort_unstable();
    starts.dedup();
    let keep = starts.len().saturating_sub(15);
    let starts: Vec<i64> = starts.split_off(keep);
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    let mut cells: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for (page, start, n) in &all.views {
        if starts.binary_search(start).is_ok() {
            // Saturating: the counts may come from another instance.
            let total = totals.entry(page).or_default();
            *total = total.saturating_add(*n);
            cells.insert((page, *start), *n);
        }
    }
    let top = super::top_pages(totals.into_iter().map(|(p, n)| (p.to_string(), n)), 5);
    let series = top
        .into_iter()
        .map(|(page, _)| Series {
            counts: starts
                .iter()
                .map(|s| cells.get(&(page.as_str(), *s)).copied().unwrap_or(0))
                .collect(),
            page,
        })
        .collect();
    // Countries: the latest complete window, the one before the latest with data, when
    // there are two.
    let mut country_starts: Vec<i64> = all.countries.iter().map(|(_, s, _)| *s).collect();
    country_starts.sort_unstable();
    country_starts.dedup();
    let country_start = match country_starts.len() {
        0 => None,
        1 => country_starts.last().copied(),
        n => Some(country_starts[n - 2]),
    };
    let settled = settled_until(&all.views);
    let ctr_start = ctr_default_window(all.ctr.iter().map(|p| p.start), settled);
    Dashboard {
        status,
        timeline: Timeline { starts, series },
        ctr: ctr_window(all, ctr_start, 8),
        countries: country_window(all, country_start, 10),
        categories: category_window(all, catalogue, ctr_start, 8),
        alerts: alerts
            .iter()
            .take(20)
            .map(|a| DashboardAlert {
                user: a.user_id.clone(),
                start: a.window_start,
                end: a.window_end,
                clicks: a.clicks,
            })
            .collect(),
    }
}

async fn dashboard(State(s): State<Shared>) -> ApiResult<Dashboard> {
    if s.streams.state() != StreamsState::Running && s.streams.state() != StreamsState::Rebalancing
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the app is {:?}", s.streams.state()),
        ));
    }
    let (from, to) = search_range(None);
    let all = all_windows(&s, from, to).await?;
    let alerts = all_alerts(&s).await?;
    Ok(axum::Json(dashboard_of(
        status_of(&s),
        &all,
        &catalogue_of(&s),
        &alerts,
    )))
}

/// Who answers for a key.
#[derive(Debug)]
enum Owner {
    /// This instance runs the key's task (partition), restored: it answers.
    Here(u32),
    /// The live instance that runs it: the request goes there.
    Elsewhere(HostInfo),
}

/// The `503` for a key whose partition `partition` of `store` this instance does not run
/// (any more, or yet).
fn not_here(store: &str, partition: u32) -> ApiError {
    ApiError::retry(format!(
        "partition {partition} of {store} is not queryable on this instance (it moved or is \
         restoring); retry"
    ))
}

/// Who answers for `key` of `store`: the live instance that runs the key's partition
/// (task) by the group's metadata, this one when that is this one (or nobody else) and it
/// runs the partition with its state restored. A request forwarded here by another
/// instance is answered here or not at all (never forwarded again). A `503` with the
/// reason when nobody can answer right now: the task restores, or it moves and no live
/// instance holds it yet.
fn key_owner(
    s: &WebState,
    headers: &HeaderMap,
    store: &str,
    key: &String,
) -> Result<Owner, ApiError> {
    let meta = s.streams.query_metadata_for_key(store, key, &StringSerde)?;
    let partition = meta.partition;
    if !headers.contains_key(FORWARDED)
        && let Some(owner) = meta.active_host.filter(|h| Some(h) != s.me.as_ref())
    {
        return Ok(Owner::Elsewhere(owner));
    }
    let here = s.streams.store_partitions(store)?;
    if here.running.contains(&partition) {
        return Ok(Owner::Here(partition));
    }
    if here.restoring.contains(&partition) {
        return Err(ApiError::retry(format!(
            "partition {partition} of {store} is restoring its state on this instance; retry"
        )));
    }
    if headers.contains_key(FORWARDED) {
        return Err(not_here(store, partition));
    }
    Err(ApiError::retry(format!(
        "partition {partition} of {store} has no live owner right now (its task is moving \
         after a rebalance); retry"
    )))
}

/// What went wrong calling another instance of the app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// It could not be reached, or the connection broke.
    #[error("instance {host}: {source}")]
    Unreachable {
        /// The instance.
        host: HostInfo,
        /// What the connection reported.
        #[source]
        source: std::io::Error,
    },
    /// It did not answer in time.
    #[error("instance {host}: no answer within {after:?}")]
    Timeout {
        /// The instance.
        host: HostInfo,
        /// The time it had.
        after: Duration,
    },
    /// Its answer was larger than the limit ([`MAX_PEER_RESPONSE`]).
    #[error("instance {host}: the answer to {path} is larger than {limit} bytes")]
    TooLarge {
        /// The instance.
        host: HostInfo,
        /// The path asked for (its start, if long).
        path: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// Its answer was not HTTP as this client reads it, or not the JSON expected.
    #[error("instance {host}: malformed answer to {path}: {reason}")]
    Malformed {
        /// The instance.
        host: HostInfo,
        /// The path asked for (its start, if long).
        path: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// It answered with another status than 200.
    #[error("instance {host} answered {path} with \"{status_line}\"")]
    Status {
        /// The instance.
        host: HostInfo,
        /// The path asked for (its start, if long).
        path: String,
        /// The status code.
        status: u16,
        /// The status line of the answer.
        status_line: String,
    },
}

impl PeerError {
    /// The status this instance answers with when a forwarded request fails so: `503`
    /// (the client may retry once the group has moved the partitions) when the instance
    /// is unreachable, too slow or unavailable itself, `502` otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            PeerError::Unreachable { .. } | PeerError::Timeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            PeerError::Status { status: 503, .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

async fn forward(owner: &HostInfo, uri: &Uri) -> Result<Response, ApiError> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let body = request(owner, path, &[(FORWARDED, "1")]).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn get_json<T: serde::de::DeserializeOwned>(
    host: &HostInfo,
    path: &str,
) -> Result<T, PeerError> {
    let body = http_get(host, path).await?;
    serde_json::from_str(&body).map_err(|e| PeerError::Malformed {
        host: host.clone(),
        path: echo(path),
        reason: format!("bad JSON: {e}"),
    })
}

/// A minimal HTTP/1.1 GET to another instance (they all run this server): the body of a
/// 200 answer, or what went wrong. The call takes at most [`PEER_TIMEOUT`] and reads at
/// most [`MAX_PEER_RESPONSE`] bytes.
///
/// # Errors
///
/// A [`PeerError`] when the instance cannot be reached or does not answer in time, when
/// its answer is too large or malformed, or when its status is not 200.
pub async fn http_get(host: &HostInfo, path: &str) -> Result<String, PeerError> {
    request(host, path, &[]).await
}

/// [`http_get`] with extra request headers.
async fn request(
    host: &HostInfo,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<String, PeerError> {
    call(host, path, headers, MAX_PEER_RESPONSE, PEER_TIMEOUT).await
}

/// [`request`] with a size limit (of the whole answer, header included) and a timeout.
async fn call(
    host: &HostInfo,
    path: &str,
    headers: &[(&str, &str)],
    limit: usize,
    timeout: Duration,
) -> Result<String, PeerError> {
    let io = |source| PeerError::Unreachable {
        host: host.clone(),
        source,
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.host.as_str(), host.port))
            .await
            .map_err(io)?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        // One byte more than the limit tells an answer at the limit from a larger one.
        let mut raw = Vec::new();
        (&mut stream)
            .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        if raw.len() > limit {
            return Err(PeerError::TooLarge {
                host: host.clone(),
                path: echo(path),
                limit,
            });
        }
        Ok(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| PeerError::Timeout {
            host: host.clone(),
            after: timeout,
        })??;
    body_of(host, path, &raw)
}

/// The body of a complete HTTP/1.x answer `raw` whose status is 200.
fn body_of(host: &HostInfo, path: &str, raw: &[u8]) -> Result<String, PeerError> {
    let malformed = |reason: String| PeerError::Malformed {
        host: host.clone(),
        path: echo(path),
        reason,
    };
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("no complete HTTP header".into()))?;
    let head = std::str::from_utf8(&raw[..end])
        .map_err(|_| malformed("an HTTP header that is not UTF-8".into()))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split_whitespace();
    let status = match (words.next(), words.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(code))) if version.starts_with("HTTP/1.") => code,
        _ => return Err(malformed(format!("status line \"{}\"", echo(status_line)))),
    };
    if status != 200 {
        return Err(PeerError::Status {
            host: host.clone(),
            path: echo(path),
            status,
            status_line: echo(status_line),
        });
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(format!("header line \"{}\"", echo(line))));
        };
        let (name, value) = (name.trim(), value.trim());
        // The instances' server (hyper) sends complete bodies with a length; a chunked
        // body would be passed on with its framing.
        if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity")
        {
            return Err(malformed(format!("transfer encoding \"{}\"", echo(value))));
        }
        if name.eq_ignore_ascii_case("content-length") && value.parse() != Ok(body.len()) {
            return Err(malformed(format!(
                "{} body bytes, content-length \"{}\"",
                body.len(),
                echo(value)
            )));
        }
    }
    String::from_utf8(body.to_vec()).map_err(|_| malformed("a body that is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn bad_parameter<T: std::fmt::Debug>(r: Result<T, ApiError>) -> &'static str {
        let e = r.expect_err("a bad parameter");
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
        e.parameter.expect("the parameter is named")
    }

    #[test]
    fn window_must_be_a_window_start_in_range() {
        assert_eq!(params(&[]).window().unwrap(), None);
        for ok in ["0", "60000", "1700000040000", "+120000"] {
            assert!(
                params(&[("window", ok)]).window().unwrap().is_some(),
                "{ok}"
            );
        }
        let last = MAX_WINDOW_START.to_string();
        assert_eq!(
            params(&[("window", &last)]).window().unwrap(),
            Some(MAX_WINDOW_START)
        );
        let beyond = (MAX_WINDOW_START + MINUTE).to_string();
        for bad in [
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
            "-60000",
            "60001",
            &beyond,
            "",
            "abc",
            "1e6",
            "60000.0",
            " 60000",
        ] {
            assert_eq!(bad_parameter(params(&[("window", bad)]).window()), "window");
        }
        let e = params(&[("window", "9223372036854775807")])
            .window()
            .unwrap_err();
        assert!(e.reason.contains("multiple of 60000"), "{}", e.reason);
        assert!(e.reason.contains(&last), "{}", e.reason);
        let twice = params(&[("window", "0"), ("window", "60000")]);
        assert_eq!(bad_parameter(twice.window()), "window");
        // Unknown parameters are ignored.
        assert_eq!(
            params(&[("x", "y"), ("windows", "z")]).window().unwrap(),
            None
        );
    }

    #[test]
    fn counts_are_between_one_and_the_maximum() {
        assert_eq!(params(&[]).count("n", 10).unwrap(), 10);
        assert_eq!(params(&[("n", "1")]).count("n", 10).unwrap(), 1);
        assert_eq!(
            params(&[("limit", "1000")]).count("limit", 20).unwrap(),
            MAX_RESULTS
        );
        for bad in ["0", "-1", "1001", "18446744073709551616", "ten", ""] {
            assert_eq!(bad_parameter(params(&[("n", bad)]).count("n", 10)), "n");
        }
    }

    #[test]
    fn minutes_are_at_least_one_and_at_most_the_retention() {
        assert_eq!(params(&[]).minutes(15).unwrap(), 15);
        assert_eq!(params(&[("minutes", "60")]).minutes(15).unwrap(), 60);
        for large in ["1441", "100000", "9223372036854775807"] {
            assert_eq!(params(&[("minutes", large)]).minutes(15).unwrap(), 24 * 60);
        }
        for bad in [
            "0",
            "-1",
            "-9223372036854775808",
            "x",
            "9223372036854775808",
        ] {
            assert_eq!(
                bad_parameter(params(&[("minutes", bad)]).minutes(15)),
                "minutes"
            );
        }
    }

    #[test]
    fn local_ranges_are_ordered_and_bounded() {
        let open = OPEN_END.to_string();
        assert_eq!(
            params(&[("from", "0"), ("to", &open)]).range().unwrap(),
            (0, OPEN_END)
        );
        assert_eq!(bad_parameter(params(&[("to", "5")]).range()), "from");
        assert_eq!(bad_parameter(params(&[("from", "5")]).range()), "to");
        assert_eq!(
            bad_parameter(params(&[("from", "6"), ("to", "5")]).range()),
            "to"
        );
        assert_eq!(
            bad_parameter(params(&[("from", "-1"), ("to", "5")]).range()),
            "from"
        );
        assert_eq!(
            bad_parameter(params(&[("from", "0"), ("to", "9223372036854775807")]).range()),
            "to"
        );
    }

    #[test]
    fn error_answers_repeat_a_bounded_part_of_the_request() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(10_000);
        let echoed = echo(&long);
        assert_eq!(echoed.chars().count(), ECHO_LIMIT + 3);
        assert!(echoed.ends_with("..."));
    }

    #[test]
    fn extreme_values_from_other_instances_do_not_overflow() {
        let page = |p: &str, start: i64, views: i64| (p.to_string(), start, views);
        let all = LocalWindows {
            views: vec![
                page("/a", i64::MAX, i64::MAX),
                page("/a", i64::MAX - 1, i64::MAX),
                page("/a", i64::MAX - 1, i64::MAX),
                page("/b", i64::MIN, i64::MIN),
            ],
            ctr: vec![PageStats {
                page: "/a".into(),
                start: i64::MAX,
                views: i64::MAX,
                clicked_views: i64::MAX,
                clicks: i64::MAX,
                ctr: 1.0,
                pending_views: 0,
            }],
            countries: vec![
                ("us".into(), i64::MAX, i64::MAX),
                ("us".into(), i64::MAX, i64::MAX),
                ("de".into(), i64::MIN, i64::MIN),
            ],
            categories: vec![CategoryStats {
                category: "news".into(),
                start: i64::MIN,
                views: i64::MIN,
                clicked_views: 0,
                clicks: 0,
                ctr: 0.0,
                pending_views: 0,
            }],
            partitions: BTreeMap::new(),
        };
        let d = dashboard_of(
            Status {
                state: "Running".into(),
                instance: "local".into(),
                instances: Vec::new(),
                events_per_sec: 0,
                lag: 0,
                processed: 0,
                windows_closed: 0,
                generated: 0,
                dropped_records: 0,
                skipped_records: 0,
            },
            &all,
            &BTreeMap::new(),
            &[],
        );
        assert_eq!(d.ctr.window_end, Some(i64::MAX));
        assert!(!d.ctr.settled);
        assert_eq!(
            ctr_window(&all, Some(i64::MAX), 5).window_end,
            Some(i64::MAX)
        );
        assert_eq!(
            country_window(&all, Some(i64::MAX), 5).countries,
            vec![("us".to_string(), i64::MAX)]
        );
        assert_eq!(d.categories.window_end, Some(i64::MAX));
    }

    #[test]
    fn click_through_answers_prefer_the_latest_settled_window() {
        let minute = |m: i64| m * MINUTE;
        let views: Vec<(String, i64, i64)> =
            (0..40).map(|m| ("/a".to_string(), minute(m), 1)).collect();
        // The latest view window starts at 39 min: windows up to 7 min are settled.
        assert_eq!(settled_until(&views), Some(minute(7)));
        let starts = [minute(3), minute(7), minute(8), minute(39)];
        assert_eq!(
            ctr_default_window(starts.iter().copied(), settled_until(&views)),
            Some(minute(7))
        );
        // Nothing settled yet: the latest window with data.
        assert_eq!(
            ctr_default_window(starts.iter().copied(), settled_until(&views[..20])),
            Some(minute(39))
        );
        assert_eq!(ctr_default_window([].into_iter(), None), None);
    }

    #[test]
    fn click_through_answers_show_the_views_still_pending() {
        let stats = |page: &str, views: i64, clicked: i64| PageStats {
            page: page.into(),
            start: 0,
            views,
            clicked_views: clicked,
            clicks: clicked,
            ctr: clicked as f64 / views as f64,
            pending_views: 0,
        };
        let all = LocalWindows {
            views: vec![
                ("/a".into(), 0, 10),
                ("/b".into(), 0, 4),
                ("/c".into(), 0, 7),
                ("/a".into(), MINUTE, 3),
            ],
            ctr: vec![stats("/a", 2, 2), stats("/b", 4, 1)],
            countries: Vec::new(),
            categories: vec![CategoryStats {
                category: "news".into(),
                start: 0,
                views: 2,
                clicked_views: 2,
                clicks: 2,
                ctr: 1.0,
                pending_views: 0,
            }],
            partitions: BTreeMap::new(),
        };
        let w = ctr_window(&all, Some(0), 10);
        let got: Vec<(&str, i64, i64)> = w
            .pages
            .iter()
            .map(|p| (p.page.as_str(), p.views, p.pending_views))
            .collect();
        assert_eq!(got, vec![("/a", 2, 8), ("/c", 0, 7), ("/b", 4, 0)]);
        let catalogue: BTreeMap<String, String> = [("/a", "news"), ("/b", "news")]
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .into_iter()
            .collect();
        let c = category_window(&all, &catalogue, Some(0), 10);
        let got: Vec<(&str, i64, i64)> = c
            .categories
            .iter()
            .map(|c| (c.category.as_str(), c.views, c.pending_views))
            .collect();
        assert_eq!(got, vec![("news", 2, 12), (UNKNOWN, 0, 7)]);
    }

    /// A fake instance: answers one connection with `answer` (after reading the request),
    /// or holds it open without answering when `answer` is `None`.
    async fn fake_peer(answer: Option<Vec<u8>>) -> HostInfo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            match answer {
                // The client may stop reading (and close) before the end.
                Some(answer) => {
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                }
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        });
        HostInfo {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn answer(status_line: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut a = format!("{status_line}\r\n{headers}\r\n").into_bytes();
        a.extend_from_slice(body);
        a
    }

    fn ok_answer(body: &[u8]) -> Vec<u8> {
        answer(
            "HTTP/1.1 200 OK",
            &format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ),
            body,
        )
    }

    async fn call_fake(answer: Option<Vec<u8>>, limit: usize) -> Result<String, PeerError> {
        let host = fake_peer(answer).await;
        call(
            &host,
            "/api/local/alerts",
            &[],
            limit,
            Duration::from_secs(2),
        )
        .await
    }

    #[tokio::test]
    async fn peer_answers_are_read_up_to_the_limit() {
        let whole = ok_answer(b"[1,2,3]");
        let at_limit = whole.len();
        assert_eq!(
            call_fake(Some(whole.clone()), at_limit).await.unwrap(),
            "[1,2,3]"
        );
        let e = call_fake(Some(whole), at_limit - 1).await.unwrap_err();
        assert!(matches!(e, PeerError::TooLarge { .. }), "{e}");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        // A large answer without an end: read only up to the limit.
        let huge = ok_answer(&vec![b'['; 8 << 20]);
        let e = call_fake(Some(huge), 1 << 20).await.unwrap_err();
        assert!(
            matches!(e, PeerError::TooLarge { limit, .. } if limit == 1 << 20),
            "{e}"
        );
    }

    #[tokio::test]
    async fn bad_peer_answers_are_errors() {
        for bad in [
            b"garbage".to_vec(),
            b"garbage\r\n\r\n{}".to_vec(),
            Vec::new(),
            answer("HTTP/1.1 200 OK", "content-length: 10\r\n", b"[1]"),
            answer(
                "HTTP/1.1 200 OK",
                "transfer-encoding: chunked\r\n",
                b"3\r\n[1]\r\n0\r\n\r\n",
            ),
            answer("HTTP/1.1 200 OK", "no colon\r\n", b"[]"),
            answer("HTTP/1.1 200 OK", "", &[0xff, 0xfe]),
        ] {
            let e = call_fake(Some(bad.clone()), 1 << 20).await.unwrap_err();
            assert!(
                matches!(e, PeerError::Malformed { .. }),
                "{}: {e}",
                String::from_utf8_lossy(&bad)
            );
            assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        }
        let e = call_fake(Some(answer("HTTP/1.1 404 Not Found", "", b"")), 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Status { status: 404, .. }), "{e}");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        let unavailable = answer("HTTP/1.1 503 Service Unavailable", "", b"{}");
        let e = call_fake(Some(unavailable), 1 << 20).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
    }

    #[tokio::test]
    async fn unreachable_and_silent_peers_are_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let gone = HostInfo {
            host: "127.0.0.1".into(),
            port,
        };
        let e = call(&gone, "/", &[], 1024, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Unreachable { .. }), "{e}");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);

        let silent = fake_peer(None).await;
        let e = call(&silent, "/", &[], 1024, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Timeout { .. }), "{e}");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
