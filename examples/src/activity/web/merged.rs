//! Answers that cover all keys: the local part of every instance, merged, given only when
//! the parts cover every partition of each store they read exactly once (else `503`).

use std::collections::BTreeMap;

use axum::extract::State;
use streams_core::query::{Coverage, HostInfo};

use super::error::{ApiError, ApiResult};
use super::local::{LocalAlerts, LocalWindows, WINDOW_STORES, local_alerts_of, local_windows_of};
use super::params::Params;
use super::peer::get_json;
use super::state::{Shared, WebState};
use crate::activity::{Alert, RECENT_ALERTS_STORE};

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

/// Every instance of the app that holds tasks, as `host:port`, sorted.
pub(super) fn instances_of(s: &WebState) -> Vec<String> {
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
pub(super) async fn all_windows(
    s: &WebState,
    from: i64,
    to: i64,
) -> Result<LocalWindows, ApiError> {
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
pub(super) async fn all_alerts(s: &WebState) -> Result<Vec<Alert>, ApiError> {
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

/// `GET /api/alerts?limit=20`.
pub(super) async fn alerts(State(s): State<Shared>, q: Params) -> ApiResult<Vec<Alert>> {
    let limit = q.count("limit", 20)?;
    let mut all = all_alerts(&s).await?;
    all.truncate(limit);
    Ok(axum::Json(all))
}
