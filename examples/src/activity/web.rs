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
//! | `GET /api/status` | state, events/s, lag, records processed, windows closed, records dropped (late) and skipped |
//! | `GET /api/dashboard` | everything the dashboard draws, in one answer |
//! | `GET /api/top-pages?window=<start ms>&n=10` | views per page in a window (default: the latest) |
//! | `GET /api/ctr?window=<start ms>&n=10` | click-through rate per page in a window |
//! | `GET /api/pages/{page}/views?minutes=15` | a page's views per minute |
//! | `GET /api/users/{user}/sessions` | a user's sessions |
//! | `GET /api/alerts?limit=20` | the latest alert of each alerted user, newest first |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use streams_core::query::HostInfo;
use streams_core::runtime::{KafkaStreams, StreamsState};
use streams_core::serde::StringSerde;
use streams_core::state::{ReadOnlySessionStore, ReadOnlyWindowStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    Activity, Alert, PAGE_CTR_STORE, PAGE_VIEW_COUNTS_STORE, RECENT_ALERTS_STORE,
    USER_SESSIONS_STORE,
};

const INDEX_HTML: &str = include_str!("../../static/index.html");
const DASHBOARD_JS: &str = include_str!("../../static/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../static/dashboard.css");

/// The window size of the per-minute aggregations.
const MINUTE: i64 = 60_000;
/// How long a call to another instance may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);
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

/// An error answer: a status and a message, sent as JSON.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<streams_core::error::StreamsError> for ApiError {
    fn from(e: streams_core::error::StreamsError) -> Self {
        // Stores move during rebalances: the client may retry.
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

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
        .route("/api/pages/{page}/views", get(page_views))
        .route("/api/users/{user}/sessions", get(user_sessions))
        .route("/api/alerts", get(alerts))
        .route("/api/local/windows", get(local_windows))
        .route("/api/local/alerts", get(local_alerts))
        .with_state(state)
}

/// The instance's status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Lifecycle state.
    pub state: String,
    /// This instance's address, or "local".
    pub instance: String,
    /// The instances of the app that hold its tasks, this one included (their
    /// `application.server`, sorted): the ones whose parts merged answers include.
    pub instances: Vec<String>,
    /// Input events processed per second.
    pub events_per_sec: u64,
    /// Unprocessed input records.
    pub lag: u64,
    /// Input events processed.
    pub processed: u64,
    /// Final window results emitted.
    pub windows_closed: u64,
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
        dropped_records: totals.dropped_records,
        skipped_records: totals.skipped_records,
    }
}

async fn status(State(s): State<Shared>) -> axum::Json<Status> {
    axum::Json(status_of(&s))
}

/// One window of one page: views, clicks and the click-through rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageStats {
    /// The page.
    pub page: String,
    /// Window start (ms).
    pub start: i64,
    /// Views in the window.
    pub views: i64,
    /// Clicks in the window.
    pub clicks: i64,
    /// clicks / views (0 without views).
    pub ctr: f64,
}

/// The local part of the per-minute stores for windows starting in `[from, to]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LocalWindows {
    /// (page, window start, views) from the view counts.
    pub views: Vec<(String, i64, i64)>,
    /// Per page and window from the click-through store.
    pub ctr: Vec<PageStats>,
}

#[derive(Debug, Deserialize)]
struct Range {
    from: i64,
    to: i64,
}

fn local_windows_of(s: &WebState, from: i64, to: i64) -> Result<LocalWindows, ApiError> {
    let counts = s
        .streams
        .window_store::<String, i64>(PAGE_VIEW_COUNTS_STORE)?;
    let ctr = s.streams.window_store::<String, Activity>(PAGE_CTR_STORE)?;
    Ok(LocalWindows {
        views: counts
            .fetch_all(from, to)?
            .into_iter()
            .map(|(w, n)| (w.key, w.window.start, n))
            .collect(),
        ctr: ctr
            .fetch_all(from, to)?
            .into_iter()
            .map(|(w, a)| PageStats {
                page: w.key,
                start: w.window.start,
                views: a.views,
                clicks: a.clicks,
                ctr: a.click_through_rate().unwrap_or(0.0),
            })
            .collect(),
    })
}

async fn local_windows(State(s): State<Shared>, Query(r): Query<Range>) -> ApiResult<LocalWindows> {
    Ok(axum::Json(local_windows_of(&s, r.from, r.to)?))
}

fn local_alerts_of(s: &WebState) -> Result<Vec<Alert>, ApiError> {
    Ok(s.streams
        .key_value_store::<String, Alert>(RECENT_ALERTS_STORE)?
        .all()?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

async fn local_alerts(State(s): State<Shared>) -> ApiResult<Vec<Alert>> {
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

/// Every instance's windows in `[from, to]`, merged.
async fn all_windows(s: &WebState, from: i64, to: i64) -> Result<LocalWindows, ApiError> {
    let mut merged = local_windows_of(s, from, to)?;
    for peer in peers(s) {
        // An instance that does not answer (killed, say, and not yet out of the group) is
        // left out: the others' part is still worth showing.
        match get_json::<LocalWindows>(&peer, &format!("/api/local/windows?from={from}&to={to}"))
            .await
        {
            Ok(part) => {
                merged.views.extend(part.views);
                merged.ctr.extend(part.ctr);
            }
            Err(e) => tracing::warn!("leaving {peer} out of merged windows: {}", e.1),
        }
    }
    Ok(merged)
}

async fn all_alerts(s: &WebState) -> Result<Vec<Alert>, ApiError> {
    let mut alerts = local_alerts_of(s)?;
    for peer in peers(s) {
        match get_json::<Vec<Alert>>(&peer, "/api/local/alerts").await {
            Ok(part) => alerts.extend(part),
            Err(e) => tracing::warn!("leaving {peer} out of merged alerts: {}", e.1),
        }
    }
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

#[derive(Debug, Deserialize)]
struct WindowQuery {
    window: Option<i64>,
    n: Option<usize>,
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
        None => ((now_ms() - 60 * MINUTE).max(0), i64::MAX / 2),
    }
}

async fn top_pages(State(s): State<Shared>, Query(q): Query<WindowQuery>) -> ApiResult<TopPages> {
    let (from, to) = search_range(q.window);
    let all = all_windows(&s, from, to).await?;
    let window = q.window.or_else(|| latest_window(&all.views));
    let pages = super::top_pages(
        all.views
            .into_iter()
            .filter(|(_, start, _)| Some(*start) == window)
            .map(|(page, _, n)| (page, n)),
        q.n.unwrap_or(10),
    );
    Ok(axum::Json(TopPages {
        window_start: window,
        window_end: window.map(|w| w + MINUTE),
        pages,
    }))
}

/// Click-through rates in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CtrWindow {
    /// Window start (ms), `None` when there is no data yet.
    pub window_start: Option<i64>,
    /// Window end (ms).
    pub window_end: Option<i64>,
    /// Pages with the most views first.
    pub pages: Vec<PageStats>,
}

fn ctr_window(all: &LocalWindows, window: Option<i64>, n: usize) -> CtrWindow {
    let mut pages: Vec<PageStats> = all
        .ctr
        .iter()
        .filter(|p| Some(p.start) == window)
        .cloned()
        .collect();
    pages.sort_by(|a, b| b.views.cmp(&a.views).then(a.page.cmp(&b.page)));
    pages.truncate(n);
    CtrWindow {
        window_start: window,
        window_end: window.map(|w| w + MINUTE),
        pages,
    }
}

async fn ctr(State(s): State<Shared>, Query(q): Query<WindowQuery>) -> ApiResult<CtrWindow> {
    let (from, to) = search_range(q.window);
    let all = all_windows(&s, from, to).await?;
    let window = q.window.or_else(|| latest_window(&all.views));
    Ok(axum::Json(ctr_window(&all, window, q.n.unwrap_or(10))))
}

#[derive(Debug, Deserialize)]
struct MinutesQuery {
    minutes: Option<i64>,
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
    Path(page): Path<String>,
    Query(q): Query<MinutesQuery>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    if let Some(owner) = owner_elsewhere(&s, &headers, PAGE_VIEW_COUNTS_STORE, &page) {
        return forward(&owner, &uri).await;
    }
    let minutes = q.minutes.unwrap_or(15).clamp(1, 24 * 60);
    let to = now_ms();
    let from = (to - minutes * MINUTE).max(0);
    let store = s
        .streams
        .window_store::<String, i64>(PAGE_VIEW_COUNTS_STORE)?;
    let windows = store.fetch_range(&page, from, i64::MAX / 2)?;
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
    Path(user): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    if let Some(owner) = owner_elsewhere(&s, &headers, USER_SESSIONS_STORE, &user) {
        return forward(&owner, &uri).await;
    }
    let store = s
        .streams
        .session_store::<String, Activity>(USER_SESSIONS_STORE)?;
    let sessions = store
        .fetch(&user)?
        .into_iter()
        .map(|(w, a)| super::UserSession {
            user_id: w.key,
            start: w.window.start,
            end: w.window.end,
            duration_ms: w.window.end - w.window.start,
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

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn alerts(State(s): State<Shared>, Query(q): Query<LimitQuery>) -> ApiResult<Vec<Alert>> {
    let mut all = all_alerts(&s).await?;
    all.truncate(q.limit.unwrap_or(20));
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
    /// Click-through rates in the latest complete window (8 most viewed pages).
    pub ctr: DashboardCtr,
    /// Recent alerts, newest first (at most 20).
    pub alerts: Vec<DashboardAlert>,
}

/// The click-through part of the [`Dashboard`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DashboardCtr {
    /// Window start.
    pub window_start: Option<i64>,
    /// Window end.
    pub window_end: Option<i64>,
    /// Pages.
    pub pages: Vec<PageStats>,
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

/// Builds the dashboard's data from merged windows and alerts.
pub fn dashboard_of(status: Status, all: &LocalWindows, alerts: &[Alert]) -> Dashboard {
    let mut starts: Vec<i64> = all.views.iter().map(|(_, s, _)| *s).collect();
    starts.sort_unstable();
    starts.dedup();
    let keep = starts.len().saturating_sub(15);
    let starts: Vec<i64> = starts.split_off(keep);
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    let mut cells: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for (page, start, n) in &all.views {
        if starts.binary_search(start).is_ok() {
            *totals.entry(page).or_default() += n;
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
    // The latest complete window: the one before the latest with data, when there are two.
    let ctr_start = match starts.len() {
        0 => None,
        1 => starts.last().copied(),
        n => Some(starts[n - 2]),
    };
    let c = ctr_window(all, ctr_start, 8);
    Dashboard {
        status,
        timeline: Timeline { starts, series },
        ctr: DashboardCtr {
            window_start: c.window_start,
            window_end: c.window_end,
            pages: c.pages,
        },
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
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the app is {:?}", s.streams.state()),
        ));
    }
    let (from, to) = search_range(None);
    let all = all_windows(&s, from, to).await?;
    let alerts = all_alerts(&s).await?;
    Ok(axum::Json(dashboard_of(status_of(&s), &all, &alerts)))
}

/// The instance owning `key` of `store`, when it is not this one and the request was not
/// forwarded here by another instance.
fn owner_elsewhere(
    s: &WebState,
    headers: &HeaderMap,
    store: &str,
    key: &String,
) -> Option<HostInfo> {
    if headers.contains_key(FORWARDED) {
        return None;
    }
    let meta = s
        .streams
        .query_metadata_for_key(store, key, &StringSerde)
        .ok()?;
    meta.active_host.filter(|h| Some(h) != s.me.as_ref())
}

async fn forward(owner: &HostInfo, uri: &axum::http::Uri) -> Result<Response, ApiError> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let body = request(owner, path, &[(FORWARDED, "1")])
        .await
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn get_json<T: serde::de::DeserializeOwned>(
    host: &HostInfo,
    path: &str,
) -> Result<T, ApiError> {
    let body = http_get(host, path)
        .await
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, e))?;
    serde_json::from_str(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_GATEWAY,
            format!("instance {host} answered {path} with bad JSON: {e}"),
        )
    })
}

/// A minimal HTTP/1.1 GET to another instance (they all run this server): the body of a
/// 200 answer, or what went wrong.
pub async fn http_get(host: &HostInfo, path: &str) -> Result<String, String> {
    request(host, path, &[]).await
}

/// [`http_get`] with extra request headers.
async fn request(host: &HostInfo, path: &str, headers: &[(&str, &str)]) -> Result<String, String> {
    let bad = |e: String| format!("instance {host}: {e}");
    let call = async {
        let mut stream = tokio::net::TcpStream::connect((host.host.as_str(), host.port))
            .await
            .map_err(|e| bad(e.to_string()))?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| bad(e.to_string()))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let text = String::from_utf8(raw).map_err(|e| bad(e.to_string()))?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| bad("no HTTP header".into()))?;
        let ok = head
            .lines()
            .next()
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
        if !ok {
            return Err(bad(format!(
                "{path}: {}",
                head.lines().next().unwrap_or("")
            )));
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(PEER_TIMEOUT, call)
        .await
        .map_err(|_| bad(format!("no answer within {PEER_TIMEOUT:?}")))?
}
