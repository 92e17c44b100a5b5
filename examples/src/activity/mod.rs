//! Real-time user-activity tracking (issue #7): the core of the flagship example.
//!
//! Page views and clicks, keyed by user id, flow into one topology ([`topology()`]) that
//! keeps, in event time:
//!
//! - views per page per minute (updates, and final results once a window closes), in the
//!   queryable window store [`PAGE_VIEW_COUNTS_STORE`]; [`top_pages_in_window`] ranks them;
//! - the click-through rate per page per minute ([`PAGE_CTR_STORE`]);
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

pub mod generator;
mod model;
mod topology;
pub mod web;

pub use model::{
    Activity, ActivityEvent, Alert, Click, ClickThroughRate, PageView, PageViewCount, PageWindow,
    SessionKey, UserSession,
};
pub use topology::{top_pages, top_pages_in_window, topology};

/// The application id the activity app runs under (it prefixes internal topics).
pub const APPLICATION_ID: &str = "activity";

/// Input: page views, keyed by user id, JSON [`PageView`] values.
pub const PAGE_VIEWS_TOPIC: &str = "page_views";
/// Input: clicks, keyed by user id, JSON [`Click`] values.
pub const CLICKS_TOPIC: &str = "clicks";

/// Output: views per page per window as they change; JSON [`PageWindow`] keys, JSON
/// [`PageViewCount`] values.
pub const PAGE_VIEW_COUNTS_TOPIC: &str = "page_view_counts";
/// Output: the final views per page per window, one record per window once it closes (end +
/// grace reached by stream time); same formats as [`PAGE_VIEW_COUNTS_TOPIC`].
pub const PAGE_VIEW_COUNTS_FINAL_TOPIC: &str = "page_view_counts_final";
/// Output: views, clicks and their ratio per page per window as they change; JSON
/// [`PageWindow`] keys, JSON [`ClickThroughRate`] values.
pub const CLICK_THROUGH_RATE_TOPIC: &str = "click_through_rate";
/// Output: user sessions as they grow; JSON [`SessionKey`] keys, JSON [`UserSession`]
/// values, and tombstones (null values) for sessions merged into larger ones.
pub const USER_SESSIONS_TOPIC: &str = "user_sessions";
/// Output: one alert per user and alert window with more clicks than the threshold; keys are
/// user ids (UTF-8), values JSON [`Alert`]s.
pub const ALERTS_TOPIC: &str = "alerts";

/// Window store: views (`i64`) per page (`String` key) and window; queryable.
pub const PAGE_VIEW_COUNTS_STORE: &str = "page-view-counts";
/// Window store: [`Activity`] (views and clicks) per page and window; queryable.
pub const PAGE_CTR_STORE: &str = "page-ctr";
/// Session store: [`Activity`] per user (`String` key) and session; queryable.
pub const USER_SESSIONS_STORE: &str = "user-sessions";
/// Window store: clicks (`i64`) per user and alert window; queryable.
pub const USER_CLICK_COUNTS_STORE: &str = "user-click-counts";
/// Key-value store: the latest [`Alert`] per user (`String` key); queryable.
pub const RECENT_ALERTS_STORE: &str = "recent-alerts";

/// The repartition of views and clicks by page: topic
/// `<application.id>-events-by-page-repartition`.
pub const EVENTS_BY_PAGE_REPARTITION: &str = "events-by-page";
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
    /// How long window and session stores keep their windows for queries, in stream time
    /// (never less than what the aggregation needs). Default: 24 hours.
    pub retention: Duration,
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
