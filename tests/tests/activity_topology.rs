//! The activity app's topology (issue #7) through the multi-partition test driver, against
//! outputs computed by hand: window boundaries, final results after end + grace, session
//! merges and splits, the alert threshold, the joins (views per country from the users
//! table, click-through rates per page and category from the view-click join and the page
//! catalogue), top pages and naming.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use streams_core::prelude::*;
use streams_examples::activity::{
    self, Activity, ActivityConfig, Alert, CategoryClickThroughRate, CategoryWindow, Click,
    ClickThrough, ClickThroughRate, CountryViewCount, CountryWindow, PageInfo, PageView,
    PageViewCount, PageWindow, SessionKey, UserProfile, UserSession,
};

const MIN: i64 = 60_000;

/// A driver over the default-config topology with 4 partitions per input topic.
fn driver() -> TopologyTestDriver {
    let topology = activity::topology(&ActivityConfig::default()).unwrap();
    TopologyTestDriver::builder(topology, StreamsConfig::new(activity::APPLICATION_ID))
        .default_partitions(4)
        .build()
        .unwrap()
}

struct Inputs {
    views: TestInputTopic<String, PageView>,
    clicks: TestInputTopic<String, Click>,
    users: TestInputTopic<String, UserProfile>,
    pages: TestInputTopic<String, PageInfo>,
}

impl Inputs {
    fn new(driver: &TopologyTestDriver) -> Self {
        Self {
            views: driver.input_topic(activity::PAGE_VIEWS_TOPIC),
            clicks: driver.input_topic(activity::CLICKS_TOPIC),
            users: driver.input_topic(activity::USERS_TOPIC),
            pages: driver.input_topic(activity::PAGES_TOPIC),
        }
    }

    fn user(&self, user: &str, country: &str, ts: i64) {
        let u = UserProfile {
            user_id: user.into(),
            country: country.into(),
            cohort: "2023-01".into(),
            ts,
        };
        self.users.pipe_input_at(user.into(), u, 0).unwrap();
    }

    fn page(&self, page: &str, category: &str) {
        let p = PageInfo {
            page: page.into(),
            category: category.into(),
            ts: 0,
        };
        self.pages.pipe_input_at(page.into(), p, 0).unwrap();
    }

    fn view(&self, user: &str, page: &str, ts: i64) {
        let v = PageView {
            user_id: user.into(),
            page: page.into(),
            referrer: "direct".into(),
            device: "mobile".into(),
            ts,
        };
        // The record timestamp differs from the event time: event time must win.
        self.views.pipe_input_at(user.into(), v, 0).unwrap();
    }

    fn click(&self, user: &str, page: &str, ts: i64) {
        let c = Click {
            user_id: user.into(),
            page: page.into(),
            element: "buy-button".into(),
            ts,
        };
        self.clicks.pipe_input_at(user.into(), c, 0).unwrap();
    }
}

fn pw(page: &str, start: i64, end: i64) -> PageWindow {
    PageWindow {
        page: page.into(),
        start,
        end,
    }
}

fn count(page: &str, start: i64, views: i64) -> (PageWindow, PageViewCount) {
    (
        pw(page, start, start + MIN),
        PageViewCount {
            page: page.into(),
            start,
            end: start + MIN,
            views,
        },
    )
}

#[test]
fn a_view_at_a_minute_boundary_counts_in_the_next_window() {
    let driver = driver();
    let input = Inputs::new(&driver);
    input.view("u1", "/a", MIN - 1);
    input.view("u2", "/a", MIN);
    input.view("u3", "/a", 2 * MIN - 1);
    let out = driver
        .output_topic::<PageWindow, PageViewCount>(activity::PAGE_VIEW_COUNTS_TOPIC)
        .read_key_values_to_list()
        .unwrap();
    assert_eq!(
        out,
        vec![count("/a", 0, 1), count("/a", MIN, 1), count("/a", MIN, 2)]
    );
    let store = driver
        .window_store::<String, i64>(activity::PAGE_VIEW_COUNTS_STORE)
        .unwrap();
    assert_eq!(store.fetch(&"/a".to_string(), 0).unwrap(), Some(1));
    assert_eq!(store.fetch(&"/a".to_string(), MIN).unwrap(), Some(2));
}

#[test]
fn final_view_counts_appear_once_after_window_end_plus_grace() {
    let driver = driver();
    let input = Inputs::new(&driver);
    let finals =
        driver.output_topic::<PageWindow, PageViewCount>(activity::PAGE_VIEW_COUNTS_FINAL_TOPIC);
    input.view("u1", "/a", 1_000);
    input.view("u2", "/a", 2_000);
    // Stream time reaches 69 999 < 60 000 + 10 000 (grace): still open.
    input.view("u3", "/a", MIN + 9_999);
    assert!(finals.is_empty());
    // Within grace: a late view still counts.
    input.view("u4", "/a", 59_000);
    assert!(finals.is_empty());
    // End + grace reached: the final result, once.
    input.view("u5", "/a", MIN + 10_000);
    assert_eq!(
        finals.read_key_values_to_list().unwrap(),
        vec![count("/a", 0, 3)]
    );
    // Too late for the closed window: dropped, and no second final.
    input.view("u6", "/a", 30_000);
    input.view("u7", "/a", MIN + 20_000);
    assert!(finals.is_empty());
    // The next window closes at 2 min + 10 s with its 3 views.
    input.view("u1", "/a", 2 * MIN + 10_000);
    assert_eq!(
        finals.read_key_values_to_list().unwrap(),
        vec![count("/a", MIN, 3)]
    );
    let store = driver
        .window_store::<String, i64>(activity::PAGE_VIEW_COUNTS_STORE)
        .unwrap();
    assert_eq!(store.fetch(&"/a".to_string(), 0).unwrap(), Some(3));
    assert_eq!(
        driver.metrics().dropped_records,
        2,
        "the late view, in the page and the country view counts"
    );
}

fn session(user: &str, start: i64, end: i64, views: i64, clicks: i64) -> UserSession {
    UserSession {
        user_id: user.into(),
        start,
        end,
        duration_ms: end - start,
        views,
        clicks,
    }
}

fn sk(user: &str, start: i64, end: i64) -> SessionKey {
    SessionKey {
        user_id: user.into(),
        start,
        end,
    }
}

#[test]
fn sessions_merge_within_thirty_minutes_and_split_after() {
    let driver = driver();
    let input = Inputs::new(&driver);
    let gap = 30 * MIN;
    // u1: a view, then a click 20 minutes later: one session.
    input.view("u1", "/a", 0);
    input.click("u1", "/a", 20 * MIN);
    // u2: exactly the gap apart: still one session (the gap is inclusive).
    input.view("u2", "/a", 0);
    input.view("u2", "/b", gap);
    // u3: one millisecond more than the gap: two sessions.
    input.view("u3", "/a", 0);
    input.view("u3", "/b", gap + 1);
    let out = driver
        .output_topic::<SessionKey, Option<UserSession>>(activity::USER_SESSIONS_TOPIC)
        .read_key_values_to_list()
        .unwrap();
    let of = |user: &str| -> Vec<(SessionKey, Option<UserSession>)> {
        out.iter()
            .filter(|(k, _)| k.user_id == user)
            .cloned()
            .collect()
    };
    assert_eq!(
        of("u1"),
        vec![
            (sk("u1", 0, 0), Some(session("u1", 0, 0, 1, 0))),
            (sk("u1", 0, 0), None),
            (
                sk("u1", 0, 20 * MIN),
                Some(session("u1", 0, 20 * MIN, 1, 1))
            ),
        ]
    );
    assert_eq!(
        of("u2"),
        vec![
            (sk("u2", 0, 0), Some(session("u2", 0, 0, 1, 0))),
            (sk("u2", 0, 0), None),
            (sk("u2", 0, gap), Some(session("u2", 0, gap, 2, 0))),
        ]
    );
    assert_eq!(
        of("u3"),
        vec![
            (sk("u3", 0, 0), Some(session("u3", 0, 0, 1, 0))),
            (
                sk("u3", gap + 1, gap + 1),
                Some(session("u3", gap + 1, gap + 1, 1, 0))
            ),
        ]
    );
    let store = driver
        .session_store::<String, Activity>(activity::USER_SESSIONS_STORE)
        .unwrap();
    let u3: Vec<(i64, i64, Activity)> = store
        .fetch(&"u3".to_string())
        .unwrap()
        .into_iter()
        .map(|(w, a)| (w.window.start, w.window.end, a))
        .collect();
    assert_eq!(
        u3,
        vec![
            (0, 0, Activity::view()),
            (gap + 1, gap + 1, Activity::view())
        ]
    );
}

#[test]
fn alerts_fire_only_above_the_threshold_once_per_window() {
    let config = ActivityConfig::default();
    assert_eq!(config.alert_threshold, 20);
    let driver = driver();
    let input = Inputs::new(&driver);
    // bot-a: exactly the threshold in [0, 10 s): no alert.
    for i in 0..20 {
        input.click("bot-a", "/a", i * 400);
    }
    // bot-b: one more than the threshold: an alert.
    for i in 0..21 {
        input.click("bot-b", "/a", i * 400);
    }
    // bot-c: over the threshold in two windows: two alerts.
    for i in 0..21 {
        input.click("bot-c", "/a", 9_000 + i * 40);
    }
    for i in 0..25 {
        input.click("bot-c", "/a", 10_000 + i * 300);
    }
    let alerts = driver.output_topic::<String, Alert>(activity::ALERTS_TOPIC);
    // bot-c's first window closed at 12 s (end + 2 s grace) during its second burst.
    assert_eq!(
        alerts.read_key_values_to_list().unwrap(),
        vec![(
            "bot-c".to_string(),
            Alert {
                user_id: "bot-c".into(),
                window_start: 0,
                window_end: 10_000,
                clicks: 21
            }
        )]
    );
    // One more click per user at 60 s closes every earlier window of its task.
    for user in ["bot-a", "bot-b", "bot-c"] {
        input.click(user, "/a", MIN);
    }
    let mut got = alerts.read_values_to_list().unwrap();
    got.sort_by(|a, b| (&a.user_id, a.window_start).cmp(&(&b.user_id, b.window_start)));
    let alert = |user: &str, start: i64, clicks: i64| Alert {
        user_id: user.into(),
        window_start: start,
        window_end: start + 10_000,
        clicks,
    };
    assert_eq!(got, vec![alert("bot-b", 0, 21), alert("bot-c", 10_000, 25)]);
    // The latest alert per user is queryable.
    let recent = driver
        .key_value_store::<String, Alert>(activity::RECENT_ALERTS_STORE)
        .unwrap();
    assert_eq!(recent.get(&"bot-a".into()).unwrap(), None);
    assert_eq!(
        recent.get(&"bot-b".into()).unwrap(),
        Some(alert("bot-b", 0, 21))
    );
    assert_eq!(
        recent.get(&"bot-c".into()).unwrap(),
        Some(alert("bot-c", 10_000, 25))
    );
}

fn ctr(
    page: &str,
    start: i64,
    views: i64,
    clicked_views: i64,
    clicks: i64,
) -> (PageWindow, ClickThroughRate) {
    (
        pw(page, start, start + MIN),
        ClickThroughRate {
            page: page.into(),
            start,
            end: start + MIN,
            views,
            clicked_views,
            clicks,
            ctr: (views > 0).then(|| clicked_views as f64 / views as f64),
        },
    )
}

#[test]
fn click_through_rate_counts_each_view_once_in_its_own_window() {
    let driver = driver();
    let input = Inputs::new(&driver);
    let out =
        driver.output_topic::<PageWindow, ClickThroughRate>(activity::CLICK_THROUGH_RATE_TOPIC);
    let latest =
        || -> HashMap<PageWindow, ClickThroughRate> { out.read_key_values_to_map().unwrap() };
    // In time order:
    // u1: a view and a click 5 s later: a clicked view, resolved at the click;
    // u2: a view with two clicks, the second in the next minute: one view, two clicks,
    //     both in the view's window;
    // u3: a view without a click: not resolved yet;
    // u4: a click, then a view of the same page: the earlier click resolves the view at
    //     once, but is not attributed to it;
    // u5: two views of /b, then a click: it follows both views, so both are clicked views;
    // u6: a click on another page than the view: no partner for either.
    input.view("u5", "/b", 0);
    input.view("u1", "/a", 1_000);
    input.click("u1", "/a", 6_000);
    input.view("u2", "/a", 10_000);
    input.click("u2", "/a", 20_000);
    input.view("u3", "/a", 30_000);
    input.click("u4", "/a", 40_000);
    input.view("u6", "/a", 45_000);
    input.click("u6", "/c", 46_000);
    input.view("u4", "/a", 50_000);
    input.view("u5", "/b", MIN + 5_000);
    input.click("u2", "/a", MIN + 10_000);
    input.click("u5", "/b", MIN + 30_000);
    let expected: HashMap<PageWindow, ClickThroughRate> = [
        ctr("/a", 0, 3, 2, 3),
        ctr("/b", 0, 1, 1, 1),
        ctr("/b", MIN, 1, 1, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(latest(), expected);

    // 31 minutes (the click window and the join's grace) after u3's and u6's views, a
    // record in their join tasks (the same user and page) closes their windows: resolved
    // without a click. The new views wait in turn.
    input.view("u3", "/a", 30_000 + 31 * MIN + 1);
    input.view("u6", "/a", 45_000 + 31 * MIN + 1);
    assert_eq!(
        latest(),
        [ctr("/a", 0, 5, 2, 3)]
            .into_iter()
            .collect::<HashMap<_, _>>()
    );
    let store = driver
        .window_store::<String, ClickThrough>(activity::PAGE_CTR_STORE)
        .unwrap();
    assert_eq!(
        store.fetch(&"/a".to_string(), 0).unwrap(),
        Some(ClickThrough {
            views: 5,
            clicked_views: 2,
            clicks: 3
        })
    );
    assert_eq!(driver.metrics().dropped_records, 0);
}

#[test]
fn click_through_rate_per_category_uses_the_page_catalogue() {
    let driver = driver();
    let input = Inputs::new(&driver);
    input.page("/a", "news");
    input.page("/b", "news");
    input.page("/c", "shop");
    input.view("u1", "/a", 1_000);
    input.click("u1", "/a", 2_000);
    input.view("u2", "/b", 3_000);
    input.click("u2", "/b", 4_000);
    input.click("u2", "/b", 5_000);
    input.view("u3", "/c", 6_000);
    input.click("u3", "/c", 7_000);
    // Not in the catalogue.
    input.view("u4", "/d", 8_000);
    input.click("u4", "/d", 9_000);
    // Unclicked, resolved once their windows close (a record in each join task).
    input.view("u5", "/a", 10_000);
    input.view("u5", "/a", 10_000 + 31 * MIN + 1);
    let cat = |category: &str, views: i64, clicked: i64, clicks: i64| {
        (
            CategoryWindow {
                category: category.into(),
                start: 0,
                end: MIN,
            },
            CategoryClickThroughRate {
                category: category.into(),
                start: 0,
                end: MIN,
                views,
                clicked_views: clicked,
                clicks,
                ctr: Some(clicked as f64 / views as f64),
            },
        )
    };
    let latest = driver
        .output_topic::<CategoryWindow, CategoryClickThroughRate>(activity::CATEGORY_CTR_TOPIC)
        .read_key_values_to_map()
        .unwrap();
    let expected: HashMap<CategoryWindow, CategoryClickThroughRate> = [
        cat("news", 3, 2, 3),
        cat("shop", 1, 1, 1),
        cat(activity::UNKNOWN, 1, 1, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(latest, expected);
}

#[test]
fn views_per_country_follow_the_users_profile_at_each_view() {
    let driver = driver();
    let input = Inputs::new(&driver);
    input.user("u1", "de", 0);
    input.user("u2", "us", 0);
    input.view("u1", "/a", 1_000);
    input.view("u2", "/a", 2_000);
    input.view("u2", "/b", 3_000);
    // u1 moves: later views count for the new country.
    input.user("u1", "fr", 4_000);
    input.view("u1", "/a", 5_000);
    // No profile: unknown.
    input.view("u9", "/a", 6_000);
    // The next minute.
    input.view("u1", "/b", MIN + 1);
    let cw = |country: &str, start: i64, views: i64| {
        (
            CountryWindow {
                country: country.into(),
                start,
                end: start + MIN,
            },
            CountryViewCount {
                country: country.into(),
                start,
                end: start + MIN,
                views,
            },
        )
    };
    let latest = driver
        .output_topic::<CountryWindow, CountryViewCount>(activity::COUNTRY_VIEW_COUNTS_TOPIC)
        .read_key_values_to_map()
        .unwrap();
    let expected: HashMap<CountryWindow, CountryViewCount> = [
        cw("de", 0, 1),
        cw("us", 0, 2),
        cw("fr", 0, 1),
        cw(activity::UNKNOWN, 0, 1),
        cw("fr", MIN, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(latest, expected);
    let store = driver
        .window_store::<String, i64>(activity::COUNTRY_VIEW_COUNTS_STORE)
        .unwrap();
    assert_eq!(store.fetch(&"us".to_string(), 0).unwrap(), Some(2));
    let profiles = driver
        .key_value_store::<String, UserProfile>(activity::USER_PROFILES_STORE)
        .unwrap();
    assert_eq!(
        profiles.get(&"u1".to_string()).unwrap().map(|p| p.country),
        Some("fr".to_string())
    );
}

#[test]
fn top_pages_ranks_one_window_of_the_view_count_store() {
    let driver = driver();
    let input = Inputs::new(&driver);
    for (page, n) in [("/a", 3), ("/b", 5), ("/c", 1), ("/d", 3)] {
        for i in 0..n {
            input.view(&format!("u{i}"), page, 1_000 * i);
        }
    }
    for i in 0..10 {
        input.view("u1", "/c", MIN + i);
    }
    let store = driver
        .window_store::<String, i64>(activity::PAGE_VIEW_COUNTS_STORE)
        .unwrap();
    let s = |p: &str, n: i64| (p.to_string(), n);
    assert_eq!(
        activity::top_pages_in_window(&store, 0, 3).unwrap(),
        vec![s("/b", 5), s("/a", 3), s("/d", 3)]
    );
    assert_eq!(
        activity::top_pages_in_window(&store, MIN, 3).unwrap(),
        vec![s("/c", 10)]
    );
    assert!(
        activity::top_pages_in_window(&store, 2 * MIN, 3)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn every_source_sink_store_and_repartition_topic_is_named() {
    let topology = activity::topology(&ActivityConfig::default()).unwrap();
    let text = topology.describe().to_string();
    // Only the aggregation processors keep generated names (the DSL cannot name them).
    for generated in [
        "KSTREAM-SOURCE",
        "KSTREAM-SINK",
        "KSTREAM-MAP",
        "KSTREAM-FLATMAP",
        "KSTREAM-FILTER",
        "KSTREAM-MERGE",
        "KSTREAM-KEY-SELECT",
        "KTABLE-TOSTREAM",
        "KTABLE-SUPPRESS",
        "KTABLE-SOURCE",
        "STATE-STORE",
        "KSTREAM-JOIN",
        "KSTREAM-LEFTJOIN",
        "KSTREAM-OUTER",
        "KSTREAM-WINDOWED",
        "KSTREAM-PROCESSOR",
        "KSTREAM-TOTABLE",
        "GLOBALKTABLE",
    ] {
        assert!(!text.contains(generated), "{generated} in\n{text}");
    }
    let stores: BTreeSet<&str> = topology.store_names().into_iter().collect();
    let expected: BTreeSet<&str> = [
        activity::PAGE_VIEW_COUNTS_STORE,
        activity::PAGE_CTR_STORE,
        activity::COUNTRY_VIEW_COUNTS_STORE,
        activity::CATEGORY_CTR_STORE,
        activity::USER_PROFILES_STORE,
        activity::CLICK_ATTRIBUTION_STORE,
        activity::USER_SESSIONS_STORE,
        activity::USER_CLICK_COUNTS_STORE,
        activity::RECENT_ALERTS_STORE,
        "page-view-counts-final-store",
        "alert-windows-final-store",
        "view-click-join-this-join-store",
        "view-click-join-outer-other-join-store",
        "view-click-join-left-shared-join-store",
    ]
    .into_iter()
    .collect();
    assert_eq!(stores, expected);
    let description = topology.describe();
    assert_eq!(description.global_stores.len(), 1);
    assert_eq!(
        (
            description.global_stores[0].store.as_str(),
            description.global_stores[0].topic.as_str()
        ),
        (activity::PAGE_CATALOGUE_STORE, activity::PAGES_TOPIC)
    );
    let mut repartitions = topology.repartition_topics(activity::APPLICATION_ID);
    repartitions.sort();
    assert_eq!(
        repartitions,
        [
            "activity-attributions-by-category-repartition",
            "activity-attributions-by-page-repartition",
            "activity-recent-alerts-table-repartition",
            "activity-view-click-join-left-repartition",
            "activity-view-click-join-right-repartition",
            "activity-views-by-country-repartition",
            "activity-views-by-page-repartition",
        ]
        .map(String::from)
        .to_vec()
    );
}

#[test]
fn the_activity_doc_shows_the_current_topology() {
    let topology = activity::topology(&ActivityConfig::default()).unwrap();
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ACTIVITY.md"),
    )
    .unwrap();
    let described = topology.describe().to_string();
    assert!(
        doc.contains(described.trim_end()),
        "docs/ACTIVITY.md is out of date; the topology now is:\n{described}"
    );
}
