//! Answers about one window of every key, merged from all instances: the top pages, the
//! click-through rates per page and per category, the views per country.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::local::{CategoryStats, LocalWindows, PageStats, WindowStats, catalogue_of};
use super::merged::all_windows;
use super::params::{MINUTE, OPEN_END, Params};
use super::state::{Shared, WebState};
use crate::activity::{self, ActivityConfig, ClickThrough, UNKNOWN};

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

/// The end of `window` (a minute later).
fn window_end(window: Option<i64>) -> Option<i64> {
    window.map(|w| w.saturating_add(MINUTE))
}

/// The windows to look at: one given window, or the last hour (to find the latest).
pub(super) fn search_range(window: Option<i64>) -> (i64, i64) {
    match window {
        Some(w) => (w, w),
        None => (now_ms().saturating_sub(60 * MINUTE).max(0), OPEN_END),
    }
}

/// The `window` and `n` asked for, and every instance's windows to answer from.
async fn asked(s: &WebState, q: &Params) -> Result<(Option<i64>, usize, LocalWindows), ApiError> {
    let (window, n) = (q.window()?, q.count("n", 10)?);
    let (from, to) = search_range(window);
    Ok((window, n, all_windows(s, from, to).await?))
}

/// The sum of the counts of each `label(key)` in `window`, from `(key, window start,
/// count)` rows; saturating, whatever another instance sent.
fn totals_in_window(
    rows: &[(String, i64, i64)],
    window: Option<i64>,
    label: impl Fn(&str) -> String,
) -> BTreeMap<String, i64> {
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for (key, start, count) in rows {
        if Some(*start) == window {
            let total = totals.entry(label(key)).or_default();
            *total = total.saturating_add(*count);
        }
    }
    totals
}

/// `GET /api/top-pages?window=<start ms>&n=10`.
pub(super) async fn top_pages(State(s): State<Shared>, q: Params) -> ApiResult<TopPages> {
    let (window, n, all) = asked(&s, &q).await?;
    let window = window.or_else(|| latest_window(&all.views));
    // One count per page (instances' parts could overlap during a rebalance), added up
    // without overflowing whatever another instance sent.
    let per_page = totals_in_window(&all.views, window, str::to_string);
    Ok(axum::Json(TopPages {
        window_start: window,
        window_end: window_end(window),
        pages: activity::top_pages(per_page, n),
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
pub(super) fn ctr_default_window(
    starts: impl Iterator<Item = i64> + Clone,
    settled: Option<i64>,
) -> Option<i64> {
    starts
        .clone()
        .filter(|s| settled.is_some_and(|until| *s <= until))
        .max()
        .or_else(|| starts.max())
}

/// Whether every view of `window` is resolved (see [`settled_until`]).
fn is_settled(views: &[(String, i64, i64)], window: Option<i64>) -> bool {
    let settled = settled_until(views);
    window.is_some_and(|w| settled.is_some_and(|until| w <= until))
}

/// The `n` pages or categories with the most views in `window` (resolved and pending):
/// their stats among `resolved`, with the views not resolved yet by `totals` (views per
/// page or category in the window, from the view counts); those with views but none
/// resolved included.
fn with_pending<S: WindowStats>(
    resolved: &[S],
    totals: BTreeMap<String, i64>,
    window: Option<i64>,
    n: usize,
) -> Vec<S> {
    let mut stats: BTreeMap<String, S> = resolved
        .iter()
        .filter(|s| Some(s.start()) == window)
        .map(|s| (s.label().to_string(), s.clone()))
        .collect();
    for (label, total) in totals {
        stats
            .entry(label.clone())
            .or_insert_with(|| S::new(label, window.unwrap_or_default(), &ClickThrough::default()))
            .set_pending(total);
    }
    let mut stats: Vec<S> = stats.into_values().collect();
    stats.sort_by(|a, b| {
        b.all_views()
            .cmp(&a.all_views())
            .then(a.label().cmp(b.label()))
    });
    stats.truncate(n);
    stats
}

/// The click-through rates of the `n` most viewed pages in `window`.
pub(super) fn ctr_window(all: &LocalWindows, window: Option<i64>, n: usize) -> CtrWindow {
    let views = totals_in_window(&all.views, window, str::to_string);
    CtrWindow {
        window_start: window,
        window_end: window_end(window),
        settled: is_settled(&all.views, window),
        pages: with_pending(&all.ctr, views, window, n),
    }
}

/// `GET /api/ctr?window=<start ms>&n=10`.
pub(super) async fn ctr(State(s): State<Shared>, q: Params) -> ApiResult<CtrWindow> {
    let (window, n, all) = asked(&s, &q).await?;
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

/// The views of the `n` countries with the most views in `window`.
pub(super) fn country_window(all: &LocalWindows, window: Option<i64>, n: usize) -> CountryViews {
    let per_country = totals_in_window(&all.countries, window, str::to_string);
    CountryViews {
        window_start: window,
        window_end: window_end(window),
        countries: activity::top_pages(per_country, n),
    }
}

/// `GET /api/countries?window=<start ms>&n=10`.
pub(super) async fn countries(State(s): State<Shared>, q: Params) -> ApiResult<CountryViews> {
    let (window, n, all) = asked(&s, &q).await?;
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

/// The click-through rates of the `n` most viewed categories in `window`; `catalogue`
/// maps pages to categories.
pub(super) fn category_window(
    all: &LocalWindows,
    catalogue: &BTreeMap<String, String>,
    window: Option<i64>,
    n: usize,
) -> CategoryWindowStats {
    let category_of = |page: &str| {
        catalogue
            .get(page)
            .cloned()
            .unwrap_or_else(|| UNKNOWN.to_string())
    };
    let views = totals_in_window(&all.views, window, category_of);
    CategoryWindowStats {
        window_start: window,
        window_end: window_end(window),
        settled: is_settled(&all.views, window),
        categories: with_pending(&all.categories, views, window, n),
    }
}

/// `GET /api/categories?window=<start ms>&n=10`.
pub(super) async fn categories(
    State(s): State<Shared>,
    q: Params,
) -> ApiResult<CategoryWindowStats> {
    let (window, n, all) = asked(&s, &q).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
