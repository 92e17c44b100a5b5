//! Answers about one key (a page's views, a user's sessions): given by the instance that
//! runs the key's partition with its state restored, forwarded there from any other.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use streams_core::query::HostInfo;
use streams_core::serde::StringSerde;
use streams_core::state::{ReadOnlySessionStore, ReadOnlyWindowStore};

use super::error::ApiError;
use super::params::{MINUTE, OPEN_END, Params, segment};
use super::peer::{FORWARDED, forward};
use super::state::{Shared, WebState};
use super::windows::now_ms;
use crate::activity::{Activity, PAGE_VIEW_COUNTS_STORE, USER_SESSIONS_STORE, UserSession};

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

/// A page's views per window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageTimeline {
    /// The page.
    pub page: String,
    /// (window start, views), oldest first.
    pub windows: Vec<(i64, i64)>,
}

/// `GET /api/pages/{page}/views?minutes=15`.
pub(super) async fn page_views(
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
    pub sessions: Vec<UserSession>,
}

/// `GET /api/users/{user}/sessions`.
pub(super) async fn user_sessions(
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
        .map(|(w, a)| UserSession {
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
