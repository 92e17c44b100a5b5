//! The activity topology and the top-pages query helper.

use std::collections::HashMap;

use streams_core::dsl::{BufferConfig, Suppressed};
use streams_core::prelude::*;
use streams_core::window::{SessionWindows, TimeWindows};

use super::model::{
    Activity, Alert, Click, ClickThroughRate, PageView, PageViewCount, PageWindow, SessionKey,
    UserSession,
};
use super::{
    ALERT_SUPPRESSION, ALERTS_TOPIC, ActivityConfig, CLICK_THROUGH_RATE_TOPIC,
    CLICKS_BY_USER_GROUPING, CLICKS_TOPIC, EVENTS_BY_PAGE_REPARTITION, EVENTS_BY_USER_GROUPING,
    PAGE_CTR_STORE, PAGE_VIEW_COUNTS_FINAL_TOPIC, PAGE_VIEW_COUNTS_STORE,
    PAGE_VIEW_COUNTS_SUPPRESSION, PAGE_VIEW_COUNTS_TOPIC, PAGE_VIEWS_TOPIC, RECENT_ALERTS_STORE,
    Result, USER_CLICK_COUNTS_STORE, USER_SESSIONS_STORE, USER_SESSIONS_TOPIC,
};

/// Builds the activity topology (see the [module docs](super) and docs/ACTIVITY.md).
///
/// Every source, sink, processor that maps or filters, grouping, repartition topic,
/// suppression and store has an explicit name, so that the topology can grow without
/// orphaning state. (The aggregation processors themselves cannot be named in this
/// framework's DSL yet; their stores and changelogs are named, which is what state hangs on.)
///
/// # Errors
///
/// [`ActivityError::Topology`](super::ActivityError::Topology) when a window setting is
/// invalid (a zero window size, for example).
pub fn topology(config: &ActivityConfig) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let views = builder.stream_with::<String, PageView>(
        &[PAGE_VIEWS_TOPIC],
        Consumed::with(default_serde(), default_serde())
            .with_timestamp_extractor(EventTimeExtractor)
            .with_name("page-views-source"),
    );
    let clicks = builder.stream_with::<String, Click>(
        &[CLICKS_TOPIC],
        Consumed::with(default_serde(), default_serde())
            .with_timestamp_extractor(EventTimeExtractor)
            .with_name("clicks-source"),
    );
    let windows = TimeWindows::of_size_and_grace(config.window_size, config.grace);

    // Views and clicks by page, through one repartition topic shared by view counts and
    // click-through rates.
    let by_page = views
        .map_named(
            |_, v| (v.page, Activity::view()),
            Named::as_("page-views-by-page"),
        )
        .merge_named(
            &clicks.map_named(
                |_, c| (c.page, Activity::click()),
                Named::as_("clicks-by-page"),
            ),
            Named::as_("page-activity-merge"),
        )
        .repartition_with(
            Repartitioned::as_(EVENTS_BY_PAGE_REPARTITION)
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        );

    // page_view_counts: views per page and window, as updates and as final results.
    let view_counts = by_page
        .filter_named(|_, a| a.views > 0, Named::as_("page-views-only"), false)
        .group_by_key_with(Grouped::as_("page-views-grouped"))
        .windowed_by(windows)
        .count_with(Materialized::as_(PAGE_VIEW_COUNTS_STORE).with_retention(config.retention));
    view_counts
        .to_stream_named(Named::as_("page-view-counts-updates"))
        .flat_map_named(view_count_record, Named::as_("page-view-counts-format"))
        .to_with(
            PAGE_VIEW_COUNTS_TOPIC,
            Produced::with(default_serde(), default_serde()).with_name("page-view-counts-sink"),
        );
    view_counts
        .suppress(
            Suppressed::until_window_closes(BufferConfig::unbounded())
                .with_name(PAGE_VIEW_COUNTS_SUPPRESSION),
        )
        .to_stream_named(Named::as_("page-view-counts-finals"))
        .flat_map_named(
            view_count_record,
            Named::as_("page-view-counts-final-format"),
        )
        .to_with(
            PAGE_VIEW_COUNTS_FINAL_TOPIC,
            Produced::with(default_serde(), default_serde())
                .with_name("page-view-counts-final-sink"),
        );

    // click_through_rate: views and clicks per page and window.
    by_page
        .group_by_key_with(Grouped::as_("page-activity-grouped"))
        .windowed_by(windows)
        .aggregate_with(
            Activity::default,
            |_, a, agg: Activity| agg.plus(a),
            Materialized::as_(PAGE_CTR_STORE)
                .with_value_serde(default_serde())
                .with_retention(config.retention),
        )
        .to_stream_named(Named::as_("page-ctr-updates"))
        .flat_map_named(
            |w: Windowed<String>, a: Option<Activity>| {
                a.map(|a| {
                    let key = page_window(&w);
                    let value = ClickThroughRate {
                        page: w.key,
                        start: w.window.start,
                        end: w.window.end,
                        views: a.views,
                        clicks: a.clicks,
                        ctr: a.click_through_rate(),
                    };
                    (key, value)
                })
            },
            Named::as_("page-ctr-format"),
        )
        .to_with(
            CLICK_THROUGH_RATE_TOPIC,
            Produced::with(default_serde(), default_serde()).with_name("click-through-rate-sink"),
        );

    // user_sessions: views and clicks per user session (the inputs are keyed by user: no
    // repartition).
    views
        .map_values_with_key(
            |_, _| Activity::view(),
            Named::as_("page-views-as-activity"),
        )
        .merge_named(
            &clicks.map_values_with_key(|_, _| Activity::click(), Named::as_("clicks-as-activity")),
            Named::as_("user-activity-merge"),
        )
        .group_by_key_with(
            Grouped::as_(EVENTS_BY_USER_GROUPING)
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            config.session_gap,
            config.grace,
        ))
        .aggregate_with(
            Activity::default,
            |_, a, agg: Activity| agg.plus(a),
            |_, x: Activity, y: Activity| x.plus(y),
            Materialized::as_(USER_SESSIONS_STORE)
                .with_value_serde(default_serde())
                .with_retention(config.retention),
        )
        .to_stream_named(Named::as_("user-sessions-updates"))
        .map_named(
            |w: Windowed<String>, a: Option<Activity>| {
                let key = SessionKey {
                    user_id: w.key.clone(),
                    start: w.window.start,
                    end: w.window.end,
                };
                let value = a.map(|a| UserSession {
                    user_id: w.key,
                    start: w.window.start,
                    end: w.window.end,
                    duration_ms: w.window.end - w.window.start,
                    views: a.views,
                    clicks: a.clicks,
                });
                (key, value)
            },
            Named::as_("user-sessions-format"),
        )
        .to_with(
            USER_SESSIONS_TOPIC,
            Produced::with(default_serde(), default_serde()).with_name("user-sessions-sink"),
        );

    // alerts: more than `threshold` clicks of a user in one closed alert window.
    let threshold = config.alert_threshold;
    let alerts = clicks
        .group_by_key_with(Grouped::as_(CLICKS_BY_USER_GROUPING))
        .windowed_by(TimeWindows::of_size_and_grace(
            config.alert_window,
            config.alert_grace,
        ))
        .count_with(Materialized::as_(USER_CLICK_COUNTS_STORE).with_retention(config.retention))
        .suppress(
            Suppressed::until_window_closes(BufferConfig::unbounded()).with_name(ALERT_SUPPRESSION),
        )
        .to_stream_named(Named::as_("alert-windows-closed"))
        .filter_named(
            move |_, n| n.is_some_and(|n| n > threshold),
            Named::as_("alert-threshold"),
            false,
        )
        .map_named(
            |w: Windowed<String>, n: Option<i64>| {
                let alert = Alert {
                    user_id: w.key.clone(),
                    window_start: w.window.start,
                    window_end: w.window.end,
                    clicks: n.unwrap_or_default(),
                };
                (w.key, alert)
            },
            Named::as_("alert-format"),
        );
    alerts.to_with(
        ALERTS_TOPIC,
        Produced::with(default_serde(), default_serde()).with_name("alerts-sink"),
    );
    // The latest alert per user. The key went from windowed to plain user id, so the DSL
    // repartitions first (topic `<application.id>-recent-alerts-repartition`).
    alerts.to_table_with(
        Named::as_("recent-alerts-table"),
        Materialized::as_(RECENT_ALERTS_STORE)
            .with_key_serde(default_serde())
            .with_value_serde(default_serde()),
    );

    Ok(builder.build()?)
}

/// The JSON key of a page's window.
fn page_window(w: &Windowed<String>) -> PageWindow {
    PageWindow {
        page: w.key.clone(),
        start: w.window.start,
        end: w.window.end,
    }
}

/// A view-count table update as an output record (time-window counts have no tombstones).
fn view_count_record(w: Windowed<String>, n: Option<i64>) -> Option<(PageWindow, PageViewCount)> {
    n.map(|views| {
        let key = page_window(&w);
        let value = PageViewCount {
            page: w.key,
            start: w.window.start,
            end: w.window.end,
            views,
        };
        (key, value)
    })
}

/// Ranks `(page, count)` pairs of one window: the `n` largest counts, ties by page name.
/// Counts of a page that appears more than once are added up.
///
/// ```
/// use streams_examples::activity::top_pages;
/// let entries = [("/a".to_string(), 3), ("/b".to_string(), 7), ("/c".to_string(), 3)];
/// assert_eq!(top_pages(entries, 2), vec![("/b".to_string(), 7), ("/a".to_string(), 3)]);
/// ```
pub fn top_pages(entries: impl IntoIterator<Item = (String, i64)>, n: usize) -> Vec<(String, i64)> {
    let mut totals: HashMap<String, i64> = HashMap::new();
    for (page, count) in entries {
        let total = totals.entry(page).or_default();
        *total = total.saturating_add(count);
    }
    let mut ranked: Vec<(String, i64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

/// The `n` most viewed pages of the window starting at `window_start`, read from the
/// [`PAGE_VIEW_COUNTS_STORE`](super::PAGE_VIEW_COUNTS_STORE) window store (any read view of
/// it: the test driver's, or an interactive query's).
///
/// # Errors
///
/// [`ActivityError::Streams`](super::ActivityError::Streams) when the store cannot be read.
pub fn top_pages_in_window<S>(store: &S, window_start: i64, n: usize) -> Result<Vec<(String, i64)>>
where
    S: ReadOnlyWindowStore<String, i64> + ?Sized,
{
    let entries = store.fetch_all(window_start, window_start)?;
    Ok(top_pages(
        entries
            .into_iter()
            .filter(|(w, _)| w.window.start == window_start)
            .map(|(w, count)| (w.key, count)),
        n,
    ))
}
