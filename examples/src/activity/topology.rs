//! The activity topology, the click attribution processor and the top-pages query helper.

use std::collections::HashMap;
use std::time::Duration;

use streams_core::dsl::{BufferConfig, Suppressed};
use streams_core::prelude::*;
use streams_core::window::{SessionWindows, TimeWindows};

use super::model::{
    Activity, Alert, Attribution, CategoryClickThroughRate, CategoryWindow, Click, ClickThrough,
    ClickThroughRate, CountryViewCount, CountryWindow, EnrichedView, PageInfo, PageView,
    PageViewCount, PageWindow, SessionKey, UserPage, UserProfile, UserSession, ViewClick,
};
use super::{
    ALERT_SUPPRESSION, ALERTS_TOPIC, ATTRIBUTIONS_BY_CATEGORY_GROUPING,
    ATTRIBUTIONS_BY_PAGE_GROUPING, ActivityConfig, CATEGORY_CTR_STORE, CATEGORY_CTR_TOPIC,
    CLICK_ATTRIBUTION_STORE, CLICK_THROUGH_RATE_TOPIC, CLICKS_BY_USER_GROUPING, CLICKS_TOPIC,
    COUNTRY_VIEW_COUNTS_STORE, COUNTRY_VIEW_COUNTS_TOPIC, EVENTS_BY_USER_GROUPING,
    PAGE_CATALOGUE_STORE, PAGE_CTR_STORE, PAGE_VIEW_COUNTS_FINAL_TOPIC, PAGE_VIEW_COUNTS_STORE,
    PAGE_VIEW_COUNTS_SUPPRESSION, PAGE_VIEW_COUNTS_TOPIC, PAGE_VIEWS_TOPIC, PAGES_TOPIC,
    RECENT_ALERTS_STORE, Result, UNKNOWN, USER_CLICK_COUNTS_STORE, USER_PROFILES_STORE,
    USER_SESSIONS_STORE, USER_SESSIONS_TOPIC, USERS_TOPIC, VIEW_CLICK_JOIN,
    VIEWS_BY_COUNTRY_GROUPING, VIEWS_BY_PAGE_REPARTITION,
};

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Builds the activity topology (see the [module docs](super) and docs/ACTIVITY.md).
///
/// Every source, sink, processor that maps, filters or joins, grouping, repartition topic,
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

    // page_view_counts: views per page and window, as updates and as final results.
    let view_counts = views
        .map_named(
            |_, v| (v.page, Activity::view()),
            Named::as_("page-views-by-page"),
        )
        .repartition_with(
            Repartitioned::as_(VIEWS_BY_PAGE_REPARTITION)
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
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

    // Reference data. The users table is read from a topic partitioned like the views (a
    // stream-table join is co-partitioned: a view and its user's profile meet in one task);
    // the page catalogue is a global table, which every instance holds in full, so views
    // look a page up by any key without a repartition.
    let users = builder
        .stream_with::<String, UserProfile>(
            &[USERS_TOPIC],
            Consumed::with(default_serde(), default_serde())
                .with_timestamp_extractor(EventTimeExtractor)
                .with_name("users-source"),
        )
        .to_table_with(
            Named::as_("user-profiles-table"),
            Materialized::as_(USER_PROFILES_STORE)
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        );
    let pages = builder.global_table_with::<String, PageInfo>(
        PAGES_TOPIC,
        Consumed::with(default_serde(), default_serde()).with_name("pages-source"),
        Materialized::as_(PAGE_CATALOGUE_STORE),
    );

    // Views enriched with the user's country (stream-table join: the profile current when
    // the view is processed) and the page's category (stream-global-table join, looked up
    // by the page). Left joins: a view without a profile or catalogue entry is kept, as
    // `unknown`.
    let enriched = views
        .left_join_table_with(
            &users,
            |v: &PageView, user: Option<&UserProfile>| {
                let country = user.map_or(UNKNOWN, |u| u.country.as_str());
                (v.clone(), country.to_string())
            },
            Joined::as_("views-with-user"),
        )
        .left_join_global_with_key(
            &pages,
            |_, (v, _): &(PageView, String)| v.page.clone(),
            |_, (v, country): &(PageView, String), page: Option<&PageInfo>| EnrichedView {
                user_id: v.user_id.clone(),
                page: v.page.clone(),
                country: country.clone(),
                category: page.map_or(UNKNOWN, |p| p.category.as_str()).to_string(),
                ts: v.ts,
            },
            Named::as_("views-with-category"),
        );

    // country_view_counts: views per country and window.
    enriched
        .map_named(
            |_, v: EnrichedView| (v.country, v.ts),
            Named::as_("views-by-country"),
        )
        .group_by_key_with(
            Grouped::as_(VIEWS_BY_COUNTRY_GROUPING)
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
        .windowed_by(windows)
        .count_with(Materialized::as_(COUNTRY_VIEW_COUNTS_STORE).with_retention(config.retention))
        .to_stream_named(Named::as_("country-view-counts-updates"))
        .flat_map_named(
            |w: Windowed<String>, n: Option<i64>| {
                n.map(|views| {
                    let key = CountryWindow {
                        country: w.key.clone(),
                        start: w.window.start,
                        end: w.window.end,
                    };
                    let value = CountryViewCount {
                        country: w.key,
                        start: w.window.start,
                        end: w.window.end,
                        views,
                    };
                    (key, value)
                })
            },
            Named::as_("country-view-counts-format"),
        )
        .to_with(
            COUNTRY_VIEW_COUNTS_TOPIC,
            Produced::with(default_serde(), default_serde()).with_name("country-view-counts-sink"),
        );

    // Click attribution: views left-joined with the clicks of the same user and page. Both
    // sides are re-keyed by (user, page), so the join repartitions them
    // (`view-click-join-left-repartition`, `-right-repartition`). A view pairs with every
    // click within `click_window` on either side, or, once its window has closed without
    // one (stream time past its time + click_window + click_grace), gets one result
    // without a click. The window is symmetric rather than `before(0)` because this
    // framework's left join finds closed unmatched views cheaply only while `before` is at
    // least `after` (with `before(0)` every record re-reads all the views still waiting);
    // the attribution below ignores the clicks before a view, which gives the same
    // counts.
    let click_window = config.click_window;
    let by_user_page = |user: &str, page: &str| UserPage {
        user_id: user.to_string(),
        page: page.to_string(),
    };
    let view_clicks = enriched
        .select_key_named(
            move |_, v: &EnrichedView| by_user_page(&v.user_id, &v.page),
            Named::as_("views-by-user-page"),
        )
        .left_join_with(
            &clicks.select_key_named(
                move |_, c: &Click| by_user_page(&c.user_id, &c.page),
                Named::as_("clicks-by-user-page"),
            ),
            |v: &EnrichedView, c: Option<&Click>| ViewClick {
                user_id: v.user_id.clone(),
                page: v.page.clone(),
                category: v.category.clone(),
                view_ts: v.ts,
                click_ts: c.map(|c| c.ts),
            },
            JoinWindows::of_time_difference_and_grace(click_window, config.click_grace),
            StreamJoined::with(default_serde(), default_serde(), default_serde())
                .with_name(VIEW_CLICK_JOIN)
                .with_store_name(VIEW_CLICK_JOIN),
        );
    // Each view counted once, in the window of its own time (see `ClickAttribution`).
    let attribution_retention = ms(config.ctr_grace() + config.window_size);
    builder.add_state_store(Stores::window_store_builder(
        Stores::persistent_window_store(CLICK_ATTRIBUTION_STORE, attribution_retention, 1)?,
        default_serde::<UserPage>(),
        default_serde::<i64>(),
    ));
    let attributions = view_clicks.process(
        || ClickAttribution { store: None },
        Named::as_("click-attribution"),
        &[CLICK_ATTRIBUTION_STORE],
    );
    // The click-through windows stay open for the views that wait in the join.
    let ctr_windows = TimeWindows::of_size_and_grace(config.window_size, config.ctr_grace());

    // click_through_rate: per page and window of the views.
    let ctr = CtrOutput {
        windows: ctr_windows,
        retention: config.retention,
    };
    ctr.write(
        &attributions,
        ("page", ATTRIBUTIONS_BY_PAGE_GROUPING, PAGE_CTR_STORE),
        |a| (a.page, a.counts),
        |w, a| {
            let key = page_window(&w);
            let value = ClickThroughRate {
                page: w.key,
                start: w.window.start,
                end: w.window.end,
                views: a.views,
                clicked_views: a.clicked_views,
                clicks: a.clicks,
                ctr: a.click_through_rate(),
            };
            (key, value)
        },
        (CLICK_THROUGH_RATE_TOPIC, "click-through-rate-sink"),
    );
    // category_click_through_rate: per page category and window of the views.
    ctr.write(
        &attributions,
        (
            "category",
            ATTRIBUTIONS_BY_CATEGORY_GROUPING,
            CATEGORY_CTR_STORE,
        ),
        |a| (a.category, a.counts),
        |w, a| {
            let key = CategoryWindow {
                category: w.key.clone(),
                start: w.window.start,
                end: w.window.end,
            };
            let value = CategoryClickThroughRate {
                category: w.key,
                start: w.window.start,
                end: w.window.end,
                views: a.views,
                clicked_views: a.clicked_views,
                clicks: a.clicks,
                ctr: a.click_through_rate(),
            };
            (key, value)
        },
        (CATEGORY_CTR_TOPIC, "category-ctr-sink"),
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
    // repartitions first (topic `<application.id>-recent-alerts-table-repartition`,
    // named after the node as in Kafka).
    alerts.to_table_with(
        Named::as_("recent-alerts-table"),
        Materialized::as_(RECENT_ALERTS_STORE)
            .with_key_serde(default_serde())
            .with_value_serde(default_serde()),
    );

    Ok(builder.build()?)
}

/// The click-through windows of the rate outputs, which stay open for the views that wait
/// in the join, and their stores' retention.
struct CtrOutput {
    windows: TimeWindows,
    retention: Duration,
}

impl CtrOutput {
    /// One click-through-rate output: the attributions re-keyed by `key` (page or
    /// category), grouped (processors named after `by`, the grouping and store as given),
    /// added up per window of the views and written to `topic` by the sink `sink` as
    /// `record` makes them.
    fn write<K: Data + DefaultSerde, V: Data + DefaultSerde>(
        &self,
        attributions: &KStream<UserPage, Attribution>,
        (by, grouping, store): (&str, &str, &str),
        key: fn(Attribution) -> (String, ClickThrough),
        record: fn(Windowed<String>, ClickThrough) -> (K, V),
        (topic, sink): (&str, &str),
    ) {
        attributions
            .map_named(
                move |_, a| key(a),
                Named::as_(format!("attributions-by-{by}")),
            )
            .group_by_key_with(
                Grouped::as_(grouping)
                    .with_key_serde(default_serde())
                    .with_value_serde(default_serde()),
            )
            .windowed_by(self.windows)
            .aggregate_with(
                ClickThrough::default,
                |_, a, agg: ClickThrough| agg.plus(a),
                Materialized::as_(store)
                    .with_value_serde(default_serde())
                    .with_retention(self.retention),
            )
            .to_stream_named(Named::as_(format!("{by}-ctr-updates")))
            .flat_map_named(
                move |w, a: Option<ClickThrough>| a.map(|a| record(w, a)),
                Named::as_(format!("{by}-ctr-format")),
            )
            .to_with(
                topic,
                Produced::with(default_serde(), default_serde()).with_name(sink),
            );
    }
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

/// The click attribution: turns the view-click join's results into what they add to the
/// click-through aggregates, with the view's event time as the record's timestamp (so the
/// aggregates window by the view, whatever the click's time), counting each view once.
///
/// A view has one or more join results: one per click within the join window (on either
/// side of the view), or a single one without a click once its window closed. The
/// processor keeps, per view (key (user, page), the view's time), the clicks attributed so
/// far in the [`CLICK_ATTRIBUTION_STORE`](super::CLICK_ATTRIBUTION_STORE) window store. The
/// first result of a view counts the view; a click at or after the view adds an attributed
/// click, and the first such click a clicked view; a click before the view adds nothing
/// (it belongs to an earlier view). Results that add nothing are not forwarded. The store
/// keeps a view for `ctr_grace` + one window of stream time, longer than the join can still
/// pair it.
struct ClickAttribution {
    store: Option<WindowStoreHandle<UserPage, i64>>,
}

impl Processor<UserPage, ViewClick, UserPage, Attribution> for ClickAttribution {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, UserPage, Attribution>,
    ) -> std::result::Result<(), StreamsError> {
        self.store = Some(ctx.window_store(CLICK_ATTRIBUTION_STORE)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<UserPage, ViewClick>,
        ctx: &mut ProcessorContext<'_, UserPage, Attribution>,
    ) -> std::result::Result<(), StreamsError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let vc = r.value;
        let seen = store.fetch(&r.key, vc.view_ts)?;
        let attributed = vc.click_ts.is_some_and(|c| c >= vc.view_ts);
        let before = seen.unwrap_or(0);
        let counts = ClickThrough {
            views: i64::from(seen.is_none()),
            clicked_views: i64::from(attributed && before == 0),
            clicks: i64::from(attributed),
        };
        let after = before + counts.clicks;
        if seen.is_none() || after != before {
            store.put(&r.key, Some(&after), vc.view_ts)?;
        }
        if counts.is_empty() {
            return Ok(());
        }
        let out = Attribution {
            page: vc.page,
            category: vc.category,
            counts,
        };
        ctx.forward(Record::new(r.key, out, vc.view_ts))
    }
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
