//! Real-time user-activity tracking (issue #7): the core of the flagship example.
//!
//! Page views and clicks, keyed by user id, flow into one topology ([`topology()`]) that
//! keeps, in event time:
//!
//! - views per page per minute (updates, and final results once a window closes), in the
//!   queryable window store [`PAGE_VIEW_COUNTS_STORE`]; [`top_pages_in_window`] ranks them;
//! - views per country per minute ([`COUNTRY_VIEW_COUNTS_STORE`]): each view joined with the
//!   `users` table (stream-table join) for its user's country;
//! - the click-through rate per page per minute ([`PAGE_CTR_STORE`]) and per page category
//!   per minute ([`CATEGORY_CTR_STORE`]): each view left-joined with the clicks of the same
//!   user and page within 30 minutes (stream-stream join), the category from the `pages`
//!   global table;
//! - user sessions with a 30-minute inactivity gap ([`USER_SESSIONS_STORE`]);
//! - alerts for users who click more than a threshold within 10 seconds, with the latest
//!   alert per user in [`RECENT_ALERTS_STORE`].
//!
//! [`generator`] makes realistic, seeded input (or replays a recording). docs/ACTIVITY.md
//! describes the data model, the topology and the semantics decisions.
//!
//! ```
//! use streams_core::prelude::*;
//! use streams_examples::activity::{self, ActivityConfig, PageView};
//!
//! let topology = activity::topology(&ActivityConfig::default()).unwrap();
//! let driver = TopologyTestDriver::new(topology, StreamsConfig::new(activity::APPLICATION_ID)).unwrap();
//! let views = driver.input_topic::<String, PageView>(activity::PAGE_VIEWS_TOPIC);
//! let view = |ts| PageView {
//!     user_id: "u1".into(), page: "/p/1".into(), referrer: "direct".into(),
//!     device: "mobile".into(), ts,
//! };
//! views.pipe_input("u1".into(), view(1_000)).unwrap();
//! views.pipe_input("u1".into(), view(2_000)).unwrap();
//! let counts = driver.window_store::<String, i64>(activity::PAGE_VIEW_COUNTS_STORE).unwrap();
//! assert_eq!(activity::top_pages_in_window(&counts, 0, 10).unwrap(), vec![("/p/1".to_string(), 2)]);
//! ```

use std::path::PathBuf;
use std::time::Duration;

use streams_core::error::{StateError, StreamsError, TopologyError};

mod dashboard;
pub mod generator;
mod model;
mod topology;
pub mod web;

pub use model::{
    Activity, ActivityEvent, Alert, Attribution, CategoryClickThroughRate, CategoryWindow, Click,
    ClickThrough, ClickThroughRate, CountryViewCount, CountryWindow, EnrichedView, InputRecord,
    PageInfo, PageView, PageViewCount, PageWindow, SessionKey, UserPage, UserProfile, UserSession,
    ViewClick,
};
pub use topology::{top_pages, top_pages_in_window, topology};

/// The application id the activity app runs under (it prefixes internal topics).
pub const APPLICATION_ID: &str = "activity";

/// Input: page views, keyed by user id, JSON [`PageView`] values.
pub const PAGE_VIEWS_TOPIC: &str = "page_views";
/// Input: clicks, keyed by user id, JSON [`Click`] values.
pub const CLICKS_TOPIC: &str = "clicks";
/// Input (compacted): user profiles, keyed by user id, JSON [`UserProfile`] values; read as
/// a table, so it must have as many partitions as [`PAGE_VIEWS_TOPIC`].
pub const USERS_TOPIC: &str = "users";
/// Input (compacted): the page catalogue, keyed by page, JSON [`PageInfo`] values; read as
/// a global table (every instance holds all of it).
pub const PAGES_TOPIC: &str = "pages";

/// Output: views per page per window as they change; JSON [`PageWindow`] keys, JSON
/// [`PageViewCount`] values.
pub const PAGE_VIEW_COUNTS_TOPIC: &str = "page_view_counts";
/// Output: the final views per page per window, one record per window once it closes (end +
/// grace reached by stream time); same formats as [`PAGE_VIEW_COUNTS_TOPIC`].
pub const PAGE_VIEW_COUNTS_FINAL_TOPIC: &str = "page_view_counts_final";
/// Output: resolved views, clicked views, attributed clicks and their ratio per page per
/// window as they change; JSON [`PageWindow`] keys, JSON [`ClickThroughRate`] values.
pub const CLICK_THROUGH_RATE_TOPIC: &str = "click_through_rate";
/// Output: views per country per window as they change; JSON [`CountryWindow`] keys, JSON
/// [`CountryViewCount`] values.
pub const COUNTRY_VIEW_COUNTS_TOPIC: &str = "country_view_counts";
/// Output: the click-through rate per page category per window as it changes; JSON
/// [`CategoryWindow`] keys, JSON [`CategoryClickThroughRate`] values.
pub const CATEGORY_CTR_TOPIC: &str = "category_click_through_rate";
/// Output: user sessions as they grow; JSON [`SessionKey`] keys, JSON [`UserSession`]
/// values, and tombstones (null values) for sessions merged into larger ones.
pub const USER_SESSIONS_TOPIC: &str = "user_sessions";
/// Output: one alert per user and alert window with more clicks than the threshold; keys are
/// user ids (UTF-8), values JSON [`Alert`]s.
pub const ALERTS_TOPIC: &str = "alerts";

/// Window store: views (`i64`) per page (`String` key) and window; queryable.
pub const PAGE_VIEW_COUNTS_STORE: &str = "page-view-counts";
/// Window store: [`ClickThrough`] per page and window (of the views' event time); queryable.
pub const PAGE_CTR_STORE: &str = "page-ctr";
/// Window store: views (`i64`) per country and window; queryable.
pub const COUNTRY_VIEW_COUNTS_STORE: &str = "country-view-counts";
/// Window store: [`ClickThrough`] per page category and window; queryable.
pub const CATEGORY_CTR_STORE: &str = "category-ctr";
/// Key-value store of the users table: the latest [`UserProfile`] per user; queryable.
pub const USER_PROFILES_STORE: &str = "user-profiles";
/// Global key-value store of the page catalogue: [`PageInfo`] per page; every instance
/// holds all of it.
pub const PAGE_CATALOGUE_STORE: &str = "page-catalogue";
/// Window store of the click attribution: per view ([`UserPage`] key, the view's time as
/// window start), the clicks attributed to it so far (`i64`); internal.
pub const CLICK_ATTRIBUTION_STORE: &str = "click-attribution";
/// Session store: [`Activity`] per user (`String` key) and session; queryable.
pub const USER_SESSIONS_STORE: &str = "user-sessions";
/// Window store: clicks (`i64`) per user and alert window; queryable.
pub const USER_CLICK_COUNTS_STORE: &str = "user-click-counts";
/// Key-value store: the latest [`Alert`] per user (`String` key); queryable.
pub const RECENT_ALERTS_STORE: &str = "recent-alerts";

/// The repartition of views by page: topic `<application.id>-views-by-page-repartition`.
pub const VIEWS_BY_PAGE_REPARTITION: &str = "views-by-page";
/// The grouping of enriched views by country: topic
/// `<application.id>-views-by-country-repartition`.
pub const VIEWS_BY_COUNTRY_GROUPING: &str = "views-by-country";
/// The view-click join: it names the join's processors, its stores
/// (`view-click-join-this-join-store`, `view-click-join-outer-other-join-store`,
/// `view-click-join-left-shared-join-store`) and the repartition topics of its two sides,
/// `<application.id>-view-click-join-left-repartition` (views) and `-right-repartition`
/// (clicks), both keyed by [`UserPage`].
pub const VIEW_CLICK_JOIN: &str = "view-click-join";
/// The grouping of attributions by page: topic
/// `<application.id>-attributions-by-page-repartition`.
pub const ATTRIBUTIONS_BY_PAGE_GROUPING: &str = "attributions-by-page";
/// The grouping of attributions by category: topic
/// `<application.id>-attributions-by-category-repartition`.
pub const ATTRIBUTIONS_BY_CATEGORY_GROUPING: &str = "attributions-by-category";
/// The grouping of views and clicks by user for sessions (no repartition: the inputs are
/// keyed by user already).
pub const EVENTS_BY_USER_GROUPING: &str = "events-by-user";
/// The grouping of clicks by user for alerts (no repartition).
pub const CLICKS_BY_USER_GROUPING: &str = "clicks-by-user";
/// The suppression that holds view counts back until their window closes; its buffer store
/// is `page-view-counts-final-store`.
pub const PAGE_VIEW_COUNTS_SUPPRESSION: &str = "page-view-counts-final";
/// The suppression that holds click counts back until their alert window closes; its buffer
/// store is `alert-windows-final-store`.
pub const ALERT_SUPPRESSION: &str = "alert-windows-final";

/// The country of views whose user has no profile, and the category of pages that are not in
/// the catalogue.
pub const UNKNOWN: &str = "unknown";

/// The settings of the activity topology. Changing window sizes changes what the stores
/// hold: reset the application (or use a new application id) when you do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityConfig {
    /// The tumbling window of view counts and click-through rates. Default: 1 minute.
    pub window_size: Duration,
    /// How long after a window's end (in stream time) late records are still counted, for
    /// view counts, click-through rates and sessions. Default: 10 seconds.
    pub grace: Duration,
    /// The inactivity gap that ends a session. Default: 30 minutes.
    pub session_gap: Duration,
    /// The tumbling window in which clicks are counted for alerts. Default: 10 seconds.
    pub alert_window: Duration,
    /// The grace of alert windows; an alert is emitted once its window's end plus this grace
    /// is reached. Default: 2 seconds.
    pub alert_grace: Duration,
    /// An alert is raised for more than this many clicks of one user in one alert window.
    /// Default: 20.
    pub alert_threshold: i64,
    /// A click is attributed to the views of the same user and page at most this long
    /// before it. Default: 30 minutes.
    pub click_window: Duration,
    /// How late (in stream time) a view or click may reach the view-click join and still be
    /// joined; a view without a click gets its unmatched result once stream time passes its
    /// time + `click_window` + `click_grace`. Default: 1 minute.
    pub click_grace: Duration,
    /// How long window and session stores keep their windows for queries, in stream time
    /// (never less than what the aggregation needs). Default: 24 hours.
    pub retention: Duration,
}

impl ActivityConfig {
    /// The grace of the click-through windows: a view's result can come from the join up
    /// to `click_window + click_grace` after the view (when it had no click), plus `grace`
    /// for the skew between the join's tasks. 31 min 10 s by default.
    pub fn ctr_grace(&self) -> Duration {
        self.click_window + self.click_grace + self.grace
    }
}

impl Default for ActivityConfig {
    fn default() -> Self {
        Self {
            window_size: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            session_gap: Duration::from_secs(30 * 60),
            alert_window: Duration::from_secs(10),
            alert_grace: Duration::from_secs(2),
            alert_threshold: 20,
            click_window: Duration::from_secs(30 * 60),
            click_grace: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// What can go wrong in the activity module.
#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    /// The topology could not be built (an invalid window size, for example).
    #[error("cannot build the activity topology: {0}")]
    Topology(#[from] TopologyError),
    /// The framework failed (a store query, the runtime).
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// A client (embedded or Kafka) failed: creating topics, producing events.
    #[error(transparent)]
    Client(#[from] streams_core::client::ClientError),
    /// The log engine failed (creating topics, appending events).
    #[error("log engine: {0}")]
    State(#[from] StateError),
    /// A recording could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The recording.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a recording is not an activity event.
    #[error("{}:{line}: not an activity event: {source}", path.display())]
    Parse {
        /// The recording.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The cause.
        source: serde_json::Error,
    },
    /// An event could not be encoded as JSON.
    #[error("cannot encode an activity event: {0}")]
    Encode(serde_json::Error),
}

/// The activity module's result.
pub type Result<T> = std::result::Result<T, ActivityError>;
