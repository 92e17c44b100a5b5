//! The activity app's records: the input events (views and clicks) and reference data (user
//! profiles, the page catalogue), the values the topology joins and aggregates, and the keys
//! and values of its output topics. Every type is JSON on the wire.

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

/// A user's profile on the `users` topic (compacted), keyed by `user_id`: the users table the
/// page views are joined with. The generator writes every user's profile before the first
/// event, then an update whenever a user moves to another country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde, EventTime)]
#[streams(format = "json")]
pub struct UserProfile {
    /// The user (also the record key).
    pub user_id: String,
    /// Where the user is, an ISO 3166 code in lower case: `us`, `de`, `in`, ...
    pub country: String,
    /// The month the user signed up, `YYYY-MM`.
    pub cohort: String,
    /// Event time of the profile (or of its change), ms since the epoch.
    #[event_time]
    pub ts: i64,
}

/// A page of the catalogue on the `pages` topic (compacted), keyed by `page`: the global
/// table the page views are joined with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde, EventTime)]
#[streams(format = "json")]
pub struct PageInfo {
    /// The page path (also the record key).
    pub page: String,
    /// The page's category: `news`, `sports`, `tech`, ...
    pub category: String,
    /// Event time of the catalogue entry, ms since the epoch.
    #[event_time]
    pub ts: i64,
}

/// Any record of the app's four input topics: what the generator writes and what recordings
/// hold, one JSON line each with a `type` tag (`page_view` and `click` lines are exactly
/// those of [`ActivityEvent`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputRecord {
    /// A page view, for the `page_views` topic.
    PageView(PageView),
    /// A click, for the `clicks` topic.
    Click(Click),
    /// A user's profile, for the `users` topic.
    User(UserProfile),
    /// A catalogue entry, for the `pages` topic.
    Page(PageInfo),
}

impl InputRecord {
    /// The event time, ms since the epoch.
    pub fn ts(&self) -> i64 {
        match self {
            Self::PageView(v) => v.ts,
            Self::Click(c) => c.ts,
            Self::User(u) => u.ts,
            Self::Page(p) => p.ts,
        }
    }

    /// The record key: the user id, or the page of a catalogue entry.
    pub fn key(&self) -> &str {
        match self {
            Self::PageView(v) => &v.user_id,
            Self::Click(c) => &c.user_id,
            Self::User(u) => &u.user_id,
            Self::Page(p) => &p.page,
        }
    }

    /// The topic the record belongs to.
    pub fn topic(&self) -> &'static str {
        match self {
            Self::PageView(_) => super::PAGE_VIEWS_TOPIC,
            Self::Click(_) => super::CLICKS_TOPIC,
            Self::User(_) => super::USERS_TOPIC,
            Self::Page(_) => super::PAGES_TOPIC,
        }
    }

    /// The view or click, if the record is one.
    pub fn activity(&self) -> Option<ActivityEvent> {
        match self {
            Self::PageView(v) => Some(ActivityEvent::PageView(v.clone())),
            Self::Click(c) => Some(ActivityEvent::Click(c.clone())),
            Self::User(_) | Self::Page(_) => None,
        }
    }

    /// Whether the record is a view or a click.
    pub fn is_activity(&self) -> bool {
        matches!(self, Self::PageView(_) | Self::Click(_))
    }
}

impl From<ActivityEvent> for InputRecord {
    fn from(e: ActivityEvent) -> Self {
        match e {
            ActivityEvent::PageView(v) => Self::PageView(v),
            ActivityEvent::Click(c) => Self::Click(c),
        }
    }
}

impl From<&ActivityEvent> for InputRecord {
    fn from(e: &ActivityEvent) -> Self {
        e.clone().into()
    }
}

impl From<&InputRecord> for InputRecord {
    fn from(r: &InputRecord) -> Self {
        r.clone()
    }
}

/// Views and clicks counted together: the value of the by-page repartition topic (one view
/// each) and the aggregate of the `user-sessions` store.
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

/// The value of `click_through_rate`: the views of a page in a window (by the views' event
/// time) and the clicks that followed them, as the view-click join attributed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct ClickThroughRate {
    /// The page.
    pub page: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
    /// Views of the page in the window that are resolved: clicked, or known to be unclicked
    /// (see [`ClickThrough`]).
    pub views: i64,
    /// Of those, the views followed by at least one click on the page by the same user
    /// within the click window (30 minutes).
    pub clicked_views: i64,
    /// Clicks attributed to those views: a click counts once for every view of the same
    /// user and page in the 30 minutes before it.
    pub clicks: i64,
    /// `clicked_views / views`, between 0 and 1; `null` without views.
    pub ctr: Option<f64>,
}

/// The join key of views and clicks: a click is attributed to the views of the same user and
/// page. JSON: `{"user_id":"user-17","page":"/p/3"}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, StreamsSerde,
)]
#[streams(format = "json")]
pub struct UserPage {
    /// The user.
    pub user_id: String,
    /// The page.
    pub page: String,
}

/// A page view with what the joins added: the user's country from the `users` table and the
/// page's category from the `pages` global table (`unknown` when the table has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde, EventTime)]
#[streams(format = "json")]
pub struct EnrichedView {
    /// The user.
    pub user_id: String,
    /// The page.
    pub page: String,
    /// The user's country when the view happened.
    pub country: String,
    /// The page's category.
    pub category: String,
    /// Event time, ms since the epoch.
    #[event_time]
    pub ts: i64,
}

/// A result of the view-click join: a view with one click on the same page by the same user
/// within the join window, or with none (`click_ts` null) once the view's window closed
/// without a click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct ViewClick {
    /// The user.
    pub user_id: String,
    /// The page.
    pub page: String,
    /// The page's category.
    pub category: String,
    /// The view's event time.
    pub view_ts: i64,
    /// The click's event time, if the view has a partner.
    pub click_ts: Option<i64>,
}

/// Views, clicked views and attributed clicks: the aggregate of the `page-ctr` and
/// `category-ctr` stores, and what one view-click result adds to them.
///
/// A view is counted once it is *resolved*: when the join first pairs it with a click of
/// the same user and page within 30 minutes on either side, or when its window closes
/// without one. It is a clicked view once a click at or after it (within 30 minutes) is
/// paired with it; every such click adds one attributed click.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, StreamsSerde,
)]
#[streams(format = "json")]
pub struct ClickThrough {
    /// Resolved views.
    pub views: i64,
    /// Views followed by a click within the click window.
    pub clicked_views: i64,
    /// Clicks attributed to the views.
    pub clicks: i64,
}

impl ClickThrough {
    /// The element-wise sum.
    pub fn plus(self, other: Self) -> Self {
        Self {
            views: self.views + other.views,
            clicked_views: self.clicked_views + other.clicked_views,
            clicks: self.clicks + other.clicks,
        }
    }

    /// Nothing to add.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Clicked views per view, between 0 and 1; `None` without views.
    pub fn click_through_rate(&self) -> Option<f64> {
        (self.views > 0).then(|| self.clicked_views as f64 / self.views as f64)
    }
}

/// What the click attribution adds to the aggregates of one page and category in the
/// window of a view: the output of the `click-attribution` processor, with the view's
/// event time as record timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct Attribution {
    /// The page viewed.
    pub page: String,
    /// Its category.
    pub category: String,
    /// What the result adds.
    pub counts: ClickThrough,
}

/// The key of the per-country window topic (`country_view_counts`):
/// `{"country":"de","start":1700000040000,"end":1700000100000}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, StreamsSerde,
)]
#[streams(format = "json")]
pub struct CountryWindow {
    /// The country.
    pub country: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
}

/// The value of `country_view_counts`: views by users of a country in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct CountryViewCount {
    /// The country (`unknown` for users without a profile).
    pub country: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
    /// Views in the window so far.
    pub views: i64,
}

/// The key of the per-category window topic (`category_click_through_rate`):
/// `{"category":"news","start":1700000040000,"end":1700000100000}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, StreamsSerde,
)]
#[streams(format = "json")]
pub struct CategoryWindow {
    /// The category.
    pub category: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
}

/// The value of `category_click_through_rate`: as [`ClickThroughRate`], for all pages of a
/// category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct CategoryClickThroughRate {
    /// The category (`unknown` for pages not in the catalogue).
    pub category: String,
    /// Window start (inclusive), ms since the epoch.
    pub start: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end: i64,
    /// Resolved views of the category's pages in the window.
    pub views: i64,
    /// Of those, the views followed by a click within the click window.
    pub clicked_views: i64,
    /// Clicks attributed to those views.
    pub clicks: i64,
    /// `clicked_views / views`; `null` without views.
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
