//! The dashboard's data: everything it draws, in one answer (`/api/dashboard`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use streams_core::runtime::StreamsState;

use super::error::{ApiError, ApiResult};
use super::local::{LocalWindows, catalogue_of};
use super::merged::{all_alerts, all_windows};
use super::state::Shared;
use super::status::{Status, status_of};
use super::windows::{
    CategoryWindowStats, CountryViews, CtrWindow, category_window, country_window,
    ctr_default_window, ctr_window, search_range, settled_until,
};
use crate::activity::{self, Alert};

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
    let top = activity::top_pages(totals.into_iter().map(|(p, n)| (p.to_string(), n)), 5);
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

/// `GET /api/dashboard`.
pub(super) async fn dashboard(State(s): State<Shared>) -> ApiResult<Dashboard> {
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

#[cfg(test)]
mod tests {
    use super::super::local::{CategoryStats, PageStats};
    use super::*;

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
}
