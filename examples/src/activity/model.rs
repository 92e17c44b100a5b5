//! The activity app's records: the two input events, the values the topology aggregates,
//! and the keys and values of its output topics. Every type is JSON on the wire.

use serde::{Deserialize, Serialize};
use streams_core::{EventTime, StreamsSerde};

/// One page view on the `page_views` topic, keyed by `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde, EventTime)]
#[streams(format = "json")]
pub struct PageView {
    /// The user (also the record key).
    pub user_id: String,
    /// The page path, e.g. `/p/12`.
    pub page: String,
    /// Where the view came from: `search`, `social`, `direct`, `email` for the first view of
    /// a visit, `internal` for the views that follow.
    pub referrer: String,
    /// `desktop`, `mobile` or `tablet`.
    pub device: String,
    /// Event time, ms since the epoch.
    #[event_time]
    pub ts: i64,
}

/// One click on an element of a page, on the `clicks` topic, keyed by `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde, EventTime)]
#[streams(format = "json")]
pub struct Click {
    /// The user (also the record key).
    pub user_id: String,
    /// The page the element is on.
    pub page: String,
    /// The element clicked, e.g. `buy-button`.
    pub element: String,
    /// Event time, ms since the epoch.
    #[event_time]
    pub ts: i64,
}

/// A page view or a click: what the generator produces and what recordings hold, one per
/// JSON line with a `type` tag: `{"type":"page_view",...}` or `{"type":"click",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActivityEvent {
    /// A page view, for the `page_views` topic.
    PageView(PageView),
    /// A click, for the `clicks` topic.
    Click(Click),
}

impl ActivityEvent {
    /// The event time, ms since the epoch.
    pub fn ts(&self) -> i64 {
        match self {
            Self::PageView(v) => v.ts,
            Self::Click(c) => c.ts,
        }
    }

    /// The user, which is also the record key.
    pub fn user_id(&self) -> &str {
        match self {
            Self::PageView(v) => &v.user_id,
            Self::Click(c) => &c.user_id,
        }
    }

    /// The page viewed or clicked on.
    pub fn page(&self) -> &str {
        match self {
            Self::PageView(v) => &v.page,
            Self::Click(c) => &c.page,
        }
    }

    /// The topic the event belongs to: [`PAGE_VIEWS_TOPIC`](super::PAGE_VIEWS_TOPIC) or
    /// [`CLICKS_TOPIC`](super::CLICKS_TOPIC).
    pub fn topic(&self) -> &'static str {
        match self {
            Self::PageView(_) => super::PAGE_VIEWS_TOPIC,
            Self::Click(_) => super::CLICKS_TOPIC,
        }
    }
}

/// Views and clicks counted together: the value both input streams are mapped to before they
/// are merged, and the aggregate of the `page-ctr` and `user-sessions` stores.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, StreamsSerde,
)]
#[streams(format = "json")]
pub struct Activity {
    /// Page views.
    pub views: i64,
    /// Clicks.
    pub clicks: i64,
}

impl Activity {
    /// One page view.
    pub fn view() -> Self {
        Self {
            views: 1,
            clicks: 0,
        }
    }

    /// One click.
    pub fn click() -> Self {
        Self {
            views: 0,
            clicks: 1,
        }
    }

    /// The element-wise sum.
    pub fn plus(self, other: Self) -> Self {
        Self {
            views: self.views + other.views,
            clicks: self.clicks + other.clicks,
        }
    }

    /// Clicks per view; `None` when there was no view.
    pub fn click_through_rate(&self) -> Option<f64> {
        (self.views > 0).then(|| self.clicks as f64 / self.views as f64)
    }
}

/// The key of the per-page window topics (`page_view_counts`, `page_view_counts_final`,
/// `click_through_rate`): `{"page":"/p/3","start":1700000040000,"end":1700000100000}`; the
/// window is `[start, end)`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, StreamsSerde,
)]
#[streams(format = "json")]
pub struct PageWindow {
    /// The page.
    pub page: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
}

/// The value of `page_view_counts` and `page_view_counts_final`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct PageViewCount {
    /// The page.
    pub page: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
    /// Views of the page in the window so far (final on `page_view_counts_final`).
    pub views: i64,
}

/// The value of `click_through_rate`: views and clicks of a page in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct ClickThroughRate {
    /// The page.
    pub page: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
    /// Views of the page in the window.
    pub views: i64,
    /// Clicks on the page in the window.
    pub clicks: i64,
    /// `clicks / views`; `null` when the window has clicks but no views (the views that led
    /// to them fell into the previous window). May exceed 1.
    pub ctr: Option<f64>,
}

/// The key of `user_sessions`: a user's session `[start, end]`, both ends inclusive (the
/// first and the last event of the session).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, StreamsSerde,
)]
#[streams(format = "json")]
pub struct SessionKey {
    /// The user.
    pub user_id: String,
    /// The time of the session's first event, ms since the epoch.
    pub start: i64,
    /// The time of the session's last event, ms since the epoch.
    pub end: i64,
}

/// The value of `user_sessions` (a session that was merged into a larger one is removed with
/// a tombstone: a null value under its old key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct UserSession {
    /// The user.
    pub user_id: String,
    /// The time of the session's first event, ms since the epoch.
    pub start: i64,
    /// The time of the session's last event, ms since the epoch.
    pub end: i64,
    /// `end - start`: 0 for a session of one event.
    pub duration_ms: i64,
    /// Page views in the session.
    pub views: i64,
    /// Clicks in the session.
    pub clicks: i64,
}

/// The value of `alerts` (keyed by user) and of the `recent-alerts` store: a user clicked more
/// than the threshold within one alert window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct Alert {
    /// The user.
    pub user_id: String,
    /// Window start (inclusive), ms since the epoch.
    pub window_start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub window_end: i64,
    /// Clicks in the window (more than the threshold).
    pub clicks: i64,
}
