//! This instance's part of the merged answers (`/api/local/windows`,
//! `/api/local/alerts`): what its running tasks hold, and the partitions of each store
//! that covers.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use streams_core::query::WindowStoreView;
use streams_core::state::ReadOnlyWindowStore;
use streams_core::window::Windowed;

use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::state::{Shared, WebState};
use crate::activity::{
    Alert, CATEGORY_CTR_STORE, COUNTRY_VIEW_COUNTS_STORE, ClickThrough, PAGE_CATALOGUE_STORE,
    PAGE_CTR_STORE, PAGE_VIEW_COUNTS_STORE, PageInfo, RECENT_ALERTS_STORE,
};

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

/// One window of one page or page category: what [`PageStats`] and [`CategoryStats`]
/// share.
pub(super) trait WindowStats: Clone {
    /// The stats of `label`'s window starting at `start` from its click-through counts,
    /// none pending.
    fn new(label: String, start: i64, counts: &ClickThrough) -> Self;
    /// The page or the category.
    fn label(&self) -> &str;
    /// Window start (ms).
    fn start(&self) -> i64;
    /// Resolved and pending views.
    fn all_views(&self) -> i64;
    /// Sets the pending views from `total`, the views in the window by the view counts.
    fn set_pending(&mut self, total: i64);
}

/// Implements [`WindowStats`] for a type whose label is field `$label`.
macro_rules! window_stats {
    ($stats:ident, $label:ident) => {
        impl WindowStats for $stats {
            fn new(label: String, start: i64, counts: &ClickThrough) -> Self {
                Self {
                    $label: label,
                    start,
                    views: counts.views,
                    clicked_views: counts.clicked_views,
                    clicks: counts.clicks,
                    ctr: counts.click_through_rate().unwrap_or(0.0),
                    pending_views: 0,
                }
            }

            fn label(&self) -> &str {
                &self.$label
            }

            fn start(&self) -> i64 {
                self.start
            }

            fn all_views(&self) -> i64 {
                self.views.saturating_add(self.pending_views)
            }

            fn set_pending(&mut self, total: i64) {
                self.pending_views = total.saturating_sub(self.views).max(0);
            }
        }
    };
}

window_stats!(PageStats, page);
window_stats!(CategoryStats, category);

/// The window store `name` of this instance's running tasks, and the partitions it covers;
/// `None` when none of its tasks runs here (an empty part, covering nothing).
fn local_window_store<V: 'static>(
    s: &WebState,
    name: &str,
) -> Result<Option<WindowStoreView<String, V>>, ApiError> {
    if s.streams.store_partitions(name)?.running.is_empty() {
        return Ok(None);
    }
    Ok(Some(s.streams.window_store::<String, V>(name)?))
}

/// Store `name` and the partitions `view` covers (none without a view).
fn covered<V>(name: &str, view: Option<&WindowStoreView<String, V>>) -> (String, Vec<u32>) {
    (
        name.to_string(),
        view.map(|v| v.partitions().to_vec()).unwrap_or_default(),
    )
}

/// Every window of `view` starting in `[from, to]` (none without a view).
fn fetch_windows<V: 'static>(
    view: Option<&WindowStoreView<String, V>>,
    from: i64,
    to: i64,
) -> Result<Vec<(Windowed<String>, V)>, ApiError> {
    Ok(match view {
        Some(v) => v.fetch_all(from, to)?,
        None => Vec::new(),
    })
}

/// (key, window start, count) of every window of `view` starting in `[from, to]`.
fn counts_in(
    view: Option<&WindowStoreView<String, i64>>,
    from: i64,
    to: i64,
) -> Result<Vec<(String, i64, i64)>, ApiError> {
    Ok(fetch_windows(view, from, to)?
        .into_iter()
        .map(|(w, n)| (w.key, w.window.start, n))
        .collect())
}

/// The stats of every window of click-through store `view` starting in `[from, to]`.
fn stats_in<S: WindowStats>(
    view: Option<&WindowStoreView<String, ClickThrough>>,
    from: i64,
    to: i64,
) -> Result<Vec<S>, ApiError> {
    Ok(fetch_windows(view, from, to)?
        .into_iter()
        .map(|(w, a)| S::new(w.key, w.window.start, &a))
        .collect())
}

/// This instance's part of the windows starting in `[from, to]`.
pub(super) fn local_windows_of(s: &WebState, from: i64, to: i64) -> Result<LocalWindows, ApiError> {
    let counts = local_window_store::<i64>(s, PAGE_VIEW_COUNTS_STORE)?;
    let ctr = local_window_store::<ClickThrough>(s, PAGE_CTR_STORE)?;
    let countries = local_window_store::<i64>(s, COUNTRY_VIEW_COUNTS_STORE)?;
    let categories = local_window_store::<ClickThrough>(s, CATEGORY_CTR_STORE)?;
    let partitions = BTreeMap::from([
        covered(PAGE_VIEW_COUNTS_STORE, counts.as_ref()),
        covered(PAGE_CTR_STORE, ctr.as_ref()),
        covered(COUNTRY_VIEW_COUNTS_STORE, countries.as_ref()),
        covered(CATEGORY_CTR_STORE, categories.as_ref()),
    ]);
    Ok(LocalWindows {
        views: counts_in(counts.as_ref(), from, to)?,
        ctr: stats_in(ctr.as_ref(), from, to)?,
        countries: counts_in(countries.as_ref(), from, to)?,
        categories: stats_in(categories.as_ref(), from, to)?,
        partitions,
    })
}

/// Page -> category, from the page catalogue (a global store: every instance holds all of
/// it); empty if it cannot be read.
pub(super) fn catalogue_of(s: &WebState) -> BTreeMap<String, String> {
    s.streams
        .key_value_store::<String, PageInfo>(PAGE_CATALOGUE_STORE)
        .and_then(|c| c.all())
        .map(|all| all.into_iter().map(|(k, p)| (k, p.category)).collect())
        .unwrap_or_default()
}

/// `GET /api/local/windows?from=<ms>&to=<ms>`.
pub(super) async fn local_windows(State(s): State<Shared>, q: Params) -> ApiResult<LocalWindows> {
    let (from, to) = q.range()?;
    Ok(axum::Json(local_windows_of(&s, from, to)?))
}

/// This instance's alerts.
pub(super) fn local_alerts_of(s: &WebState) -> Result<LocalAlerts, ApiError> {
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

/// `GET /api/local/alerts`.
pub(super) async fn local_alerts(State(s): State<Shared>) -> ApiResult<LocalAlerts> {
    Ok(axum::Json(local_alerts_of(&s)?))
}
