//! The activity app end to end on the embedded log engine: seeded generated events in 4
//! partitions (with the generator's reference data: user profiles and their updates, the
//! page catalogue), the app run by `KafkaStreams` until caught up, and every output topic
//! checked against an independent computation from the raw records (plain maps, not the
//! topology): views per page, per country (the user's profile at the view) and final
//! counts, click-through rates per page and category (views with a click of the same user
//! and page within 30 minutes; views without one once their window closed), sessions and
//! alerts.
//!
//! Late records: a task processes its own partitions (views and clicks of its users) in
//! timestamp order, but tasks after a repartition topic receive the records of all upstream
//! tasks in whatever order those were processed, so a backlog processed at once can make
//! on-time records look late there (in Kafka Streams too). The test therefore writes the
//! events in slices of five minutes of event time and waits until the app has caught up
//! after each, with ten minutes of grace: no record can then be late (a record at `t` is
//! processed while stream time is below `t + 5 min`, and its windows stay open until
//! `end + 10 min > t + 10 min`), so the results must be exact (the run is clean:
//! at-least-once reprocesses nothing).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState};
use streams_examples::activity::generator::{
    ActivityGenerator, GeneratorConfig, append_events, create_input_topics,
};
use streams_examples::activity::{
    self, ActivityConfig, ActivityEvent, Alert, CategoryClickThroughRate, CategoryWindow,
    ClickThroughRate, CountryViewCount, CountryWindow, InputRecord, PageViewCount, PageWindow,
    SessionKey, UserPage, UserSession,
};

const PARTITIONS: u32 = 4;
const EVENTS: usize = 30_000;
const SLICE_MS: i64 = 5 * 60 * 1000;
const MINUTE: i64 = 60_000;
const GAP: i64 = 30 * MINUTE;
const ALERT_WINDOW: i64 = 10_000;
const THRESHOLD: i64 = 20;
const CLICK_WINDOW: i64 = 30 * MINUTE;
const CLICK_GRACE: i64 = MINUTE;

fn app_config() -> ActivityConfig {
    ActivityConfig {
        grace: Duration::from_secs(10 * 60),
        alert_grace: Duration::from_secs(10 * 60),
        ..ActivityConfig::default()
    }
}

/// Every record of `topic` in the engine, decoded with the types' default serdes (JSON, or
/// UTF-8 for `String` keys), partition by partition in offset order (so per key in
/// production order); `None` values are tombstones.
fn read_topic<K: DefaultSerde, V: DefaultSerde>(
    engine: &LogEngine,
    topic: &str,
) -> Vec<(K, Option<V>)> {
    let partitions = engine
        .topics()
        .into_iter()
        .find(|(n, _)| n == topic)
        .map_or_else(|| panic!("no topic {topic}"), |(_, c)| c.partitions);
    let mut out = Vec::new();
    for p in 0..partitions {
        for r in engine.read(topic, p, 0, usize::MAX).unwrap() {
            let key = K::default_serde().deserialize(&r.key.unwrap()).unwrap();
            let value = r.value.map(|v| V::default_serde().deserialize(&v).unwrap());
            out.push((key, value));
        }
    }
    out
}

/// The latest value per key.
fn latest<K: Ord, V>(records: Vec<(K, Option<V>)>) -> BTreeMap<K, Option<V>> {
    records.into_iter().collect()
}

/// Asserts `got == want`, listing the first differing keys rather than both maps.
fn assert_same<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) {
    let diff: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(k) != Some(v))
        .map(|(k, v)| format!("{k:?}: want {v:?}, got {:?}", got.get(k)))
        .chain(
            got.iter()
                .filter(|(k, _)| !want.contains_key(k))
                .map(|(k, v)| format!("{k:?}: unexpected {v:?}")),
        )
        .take(10)
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: {} keys differ, e.g.\n{}",
        diff.len(),
        diff.join("\n")
    );
}

fn window_start(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

/// What the app should compute, from the raw events.
#[derive(Default)]
struct Expected {
    /// (page, window start) -> (views, clicks).
    per_page: BTreeMap<(String, i64), (i64, i64)>,
    /// (country, window start) -> views.
    per_country: BTreeMap<(String, i64), i64>,
    /// (page, window start) -> (resolved views, clicked views, attributed clicks).
    ctr_per_page: BTreeMap<(String, i64), (i64, i64, i64)>,
    /// The same per category.
    ctr_per_category: BTreeMap<(String, i64), (i64, i64, i64)>,
    /// Distinct views resolved without a click (their window closed).
    closed_unclicked: usize,
    /// (user, start, end) -> (views, clicks).
    sessions: BTreeMap<(String, i64, i64), (i64, i64)>,
    /// (user, alert window start) -> clicks.
    clicks_per_user_window: BTreeMap<(String, i64), i64>,
    /// The latest event time: no task's stream time goes beyond it.
    max_ts: i64,
    /// The least, over the partitions of the by-page repartition topic, of the partition's
    /// latest view: every task counting views got a view at this time or later.
    min_partition_max_view: i64,
    /// The least, over the input partitions, of the partition's latest click: every task
    /// counting clicks per user got a click at this time or later.
    min_partition_max_click: i64,
}

impl Expected {
    fn from(records: &[InputRecord]) -> Self {
        let events: Vec<ActivityEvent> = records.iter().filter_map(InputRecord::activity).collect();
        let mut e = Expected::default();
        e.enrichments(records);
        let mut per_user: HashMap<&str, Vec<(i64, bool)>> = HashMap::new();
        let mut max_click = [i64::MIN; PARTITIONS as usize];
        let mut max_view_by_page_partition = [i64::MIN; PARTITIONS as usize];
        for ev in &events {
            let ts = ev.ts();
            e.max_ts = e.max_ts.max(ts);
            let user_p = partition_for_key(ev.user_id().as_bytes(), PARTITIONS) as usize;
            let page_p = partition_for_key(ev.page().as_bytes(), PARTITIONS) as usize;
            let slot = e
                .per_page
                .entry((ev.page().to_string(), window_start(ts, MINUTE)))
                .or_default();
            match ev {
                ActivityEvent::PageView(_) => {
                    slot.0 += 1;
                    max_view_by_page_partition[page_p] = max_view_by_page_partition[page_p].max(ts);
                }
                ActivityEvent::Click(c) => {
                    slot.1 += 1;
                    max_click[user_p] = max_click[user_p].max(ts);
                    *e.clicks_per_user_window
                        .entry((c.user_id.clone(), window_start(ts, ALERT_WINDOW)))
                        .or_default() += 1;
                }
            }
            per_user
                .entry(ev.user_id())
                .or_default()
                .push((ts, matches!(ev, ActivityEvent::PageView(_))));
        }
        // Sessions: a user's events sorted by time, split where the pause exceeds the gap.
        for (user, mut evs) in per_user {
            evs.sort_unstable();
            let mut current: Option<(i64, i64, i64, i64)> = None;
            for (ts, is_view) in evs {
                let (v, c) = if is_view { (1, 0) } else { (0, 1) };
                current = match current {
                    Some((start, end, views, clicks)) if ts - end <= GAP => {
                        Some((start, ts, views + v, clicks + c))
                    }
                    Some((start, end, views, clicks)) => {
                        e.sessions
                            .insert((user.to_string(), start, end), (views, clicks));
                        Some((ts, ts, v, c))
                    }
                    None => Some((ts, ts, v, c)),
                };
            }
            if let Some((start, end, views, clicks)) = current {
                e.sessions
                    .insert((user.to_string(), start, end), (views, clicks));
            }
        }
        e.min_partition_max_view = *max_view_by_page_partition.iter().min().unwrap();
        e.min_partition_max_click = *max_click.iter().min().unwrap();
        e
    }

    /// Views per country and click-through rates, from the records in time order.
    fn enrichments(&mut self, records: &[InputRecord]) {
        let mut country: HashMap<&str, &str> = HashMap::new();
        let mut category: HashMap<&str, &str> = HashMap::new();
        let mut clicks: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
        let mut views: BTreeSet<(&str, &str, i64)> = BTreeSet::new();
        let mut join_time = [i64::MIN; PARTITIONS as usize];
        let join_partition = |user: &str, page: &str| {
            let key = serde_json::to_vec(&UserPage {
                user_id: user.into(),
                page: page.into(),
            })
            .unwrap();
            partition_for_key(&key, PARTITIONS) as usize
        };
        // The records are in time order, a profile update before the views that follow it.
        for r in records {
            match r {
                InputRecord::User(u) => {
                    country.insert(&u.user_id, &u.country);
                }
                InputRecord::Page(p) => {
                    category.insert(&p.page, &p.category);
                }
                InputRecord::PageView(v) => {
                    let c = country
                        .get(v.user_id.as_str())
                        .copied()
                        .unwrap_or("unknown");
                    *self
                        .per_country
                        .entry((c.to_string(), window_start(v.ts, MINUTE)))
                        .or_default() += 1;
                    views.insert((&v.user_id, &v.page, v.ts));
                    let p = join_partition(&v.user_id, &v.page);
                    join_time[p] = join_time[p].max(v.ts);
                }
                InputRecord::Click(c) => {
                    clicks.entry((&c.user_id, &c.page)).or_default().push(c.ts);
                    let p = join_partition(&c.user_id, &c.page);
                    join_time[p] = join_time[p].max(c.ts);
                }
            }
        }
        for (user, page, ts) in views {
            let partners = clicks.get(&(user, page)).map_or(&[][..], Vec::as_slice);
            let near = partners.iter().any(|c| (c - ts).abs() <= CLICK_WINDOW);
            let after = partners
                .iter()
                .filter(|c| (ts..=ts + CLICK_WINDOW).contains(*c))
                .count() as i64;
            let closed = ts + CLICK_WINDOW + CLICK_GRACE < join_time[join_partition(user, page)];
            if !near && !closed {
                continue;
            }
            if !near {
                self.closed_unclicked += 1;
            }
            let start = window_start(ts, MINUTE);
            let cat = category.get(page).copied().unwrap_or("unknown");
            for slot in [
                self.ctr_per_page
                    .entry((page.to_string(), start))
                    .or_default(),
                self.ctr_per_category
                    .entry((cat.to_string(), start))
                    .or_default(),
            ] {
                slot.0 += 1;
                slot.1 += i64::from(after > 0);
                slot.2 += after;
            }
        }
    }
}

#[test]
fn every_output_topic_matches_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    create_input_topics(&engine, PARTITIONS).unwrap();
    let generator = ActivityGenerator::new(GeneratorConfig {
        seed: 2024,
        users: 400,
        pages: 200,
        events_per_second: 2.0,
        ..GeneratorConfig::default()
    });
    // The reference data first, then the views and clicks with the profile updates.
    let mut records = generator.catalogue();
    let catalogue = records.len();
    let mut events = 0;
    for r in generator.records() {
        events += usize::from(r.is_activity());
        records.push(r);
        if events == EVENTS {
            break;
        }
    }
    let expected = Expected::from(&records);
    append_events(&engine, records.drain(..catalogue), PARTITIONS).unwrap();

    let config = StreamsConfig::new(activity::APPLICATION_ID)
        .with_state_dir(dir.path().join("state"))
        .with_commit_interval(Duration::from_millis(100));
    let topology = activity::topology(&app_config()).unwrap();
    let mut app = KafkaStreams::new(topology, config, engine.clone()).unwrap();
    app.start().unwrap();
    // Slices of five minutes of event time, each processed before the next is written.
    let first = records[0].ts();
    let mut slices: BTreeMap<i64, Vec<InputRecord>> = BTreeMap::new();
    for r in &records {
        slices
            .entry((r.ts() - first) / SLICE_MS)
            .or_default()
            .push(r.clone());
    }
    for slice in slices.into_values() {
        append_events(&engine, slice, PARTITIONS).unwrap();
        app.wait_until_caught_up(Duration::from_secs(120)).unwrap();
    }
    assert_eq!(app.state(), StreamsState::Running);
    let metrics = app.metrics().total();
    app.close().unwrap();
    assert_eq!(metrics.dropped_records, 0, "no record may be late");
    assert_eq!(metrics.skipped_records, 0);

    // The input went where a Kafka producer would have put it.
    for topic in [activity::PAGE_VIEWS_TOPIC, activity::CLICKS_TOPIC] {
        for p in 0..PARTITIONS {
            for r in engine.read(topic, p, 0, usize::MAX).unwrap() {
                assert_eq!(partition_for_key(&r.key.unwrap(), PARTITIONS), p);
            }
        }
    }
    let written: usize = [activity::PAGE_VIEWS_TOPIC, activity::CLICKS_TOPIC]
        .iter()
        .flat_map(|t| (0..PARTITIONS).map(move |p| (t, p)))
        .map(|(t, p)| engine.read(t, p, 0, usize::MAX).unwrap().len())
        .sum();
    assert_eq!(written, EVENTS);

    check_view_counts(&engine, &expected);
    check_final_view_counts(&engine, &expected);
    check_country_view_counts(&engine, &expected);
    check_click_through_rates(&engine, &expected);
    check_category_click_through_rates(&engine, &expected);
    check_sessions(&engine, &expected);
    check_alerts(&engine, &expected);
}

/// The latest value of every one-minute window of output `topic`, by (name, window start):
/// none null, each naming its key's window (`key` and `value` give the (name, start, end)
/// of each).
fn latest_windows<K: DefaultSerde + Ord + std::fmt::Debug, V: DefaultSerde>(
    engine: &LogEngine,
    topic: &str,
    key: impl Fn(&K) -> (&str, i64, i64),
    value: impl Fn(&V) -> (&str, i64, i64),
) -> BTreeMap<(String, i64), V> {
    latest(read_topic::<K, V>(engine, topic))
        .into_iter()
        .map(|(k, v)| {
            let v = v.unwrap_or_else(|| panic!("{topic}: {k:?} is null"));
            let (name, start, end) = key(&k);
            assert_eq!(end - start, MINUTE, "{topic}: {k:?}");
            assert_eq!(value(&v), (name, start, end), "{topic}: {k:?}");
            ((name.to_string(), start), v)
        })
        .collect()
}

/// The latest click-through counts of output `topic` by (name, window start), as
/// [`latest_windows`]; each record's ratio fits its counts (`rate` gives both).
fn latest_rates<K: DefaultSerde + Ord + std::fmt::Debug, V: DefaultSerde + std::fmt::Debug>(
    engine: &LogEngine,
    topic: &str,
    key: impl Fn(&K) -> (&str, i64, i64),
    value: impl Fn(&V) -> (&str, i64, i64),
    rate: impl Fn(&V) -> (Option<f64>, (i64, i64, i64)),
) -> BTreeMap<(String, i64), (i64, i64, i64)> {
    latest_windows(engine, topic, key, value)
        .into_iter()
        .map(|(k, v)| {
            let (ctr, (views, clicked_views, clicks)) = rate(&v);
            assert_ratio(ctr, clicked_views, views, &format!("{v:?}"));
            (k, (views, clicked_views, clicks))
        })
        .collect()
}

fn check_view_counts(engine: &LogEngine, expected: &Expected) {
    let got: BTreeMap<(String, i64), i64> = latest_windows(
        engine,
        activity::PAGE_VIEW_COUNTS_TOPIC,
        |k: &PageWindow| (k.page.as_str(), k.start, k.end),
        |v: &PageViewCount| (v.page.as_str(), v.start, v.end),
    )
    .into_iter()
    .map(|(k, v)| (k, v.views))
    .collect();
    let want: BTreeMap<(String, i64), i64> = expected
        .per_page
        .iter()
        .filter(|(_, (views, _))| *views > 0)
        .map(|(k, (views, _))| (k.clone(), *views))
        .collect();
    assert!(want.len() > 1_000, "{} page windows", want.len());
    assert_same("page_view_counts", &got, &want);
}

fn check_final_view_counts(engine: &LogEngine, expected: &Expected) {
    let grace = i64::try_from(app_config().grace.as_millis()).unwrap();
    let records =
        read_topic::<PageWindow, PageViewCount>(engine, activity::PAGE_VIEW_COUNTS_FINAL_TOPIC);
    let mut seen = BTreeSet::new();
    for (k, v) in &records {
        // One final result per window, with the window's exact count.
        assert!(
            seen.insert((k.page.clone(), k.start)),
            "second final for {k:?}"
        );
        let (views, _) = expected.per_page[&(k.page.clone(), k.start)];
        assert_eq!(v.as_ref().unwrap().views, views, "{k:?}");
        // Only closed windows: stream time reached end + grace.
        assert!(k.end + grace <= expected.max_ts, "{k:?} is not closed");
    }
    // Every window that closed before the last view of every partition has its final.
    let sure: BTreeSet<(String, i64)> = expected
        .per_page
        .iter()
        .filter(|((_, start), (views, _))| {
            *views > 0 && start + MINUTE + grace <= expected.min_partition_max_view
        })
        .map(|(k, _)| k.clone())
        .collect();
    assert!(sure.len() > 1_000, "{} closed windows", sure.len());
    let missing: Vec<_> = sure.difference(&seen).collect();
    assert!(missing.is_empty(), "no final for {missing:?}");
}

fn check_country_view_counts(engine: &LogEngine, expected: &Expected) {
    let got: BTreeMap<(String, i64), i64> = latest_windows(
        engine,
        activity::COUNTRY_VIEW_COUNTS_TOPIC,
        |k: &CountryWindow| (k.country.as_str(), k.start, k.end),
        |v: &CountryViewCount| (v.country.as_str(), v.start, v.end),
    )
    .into_iter()
    .map(|(k, v)| (k, v.views))
    .collect();
    let countries: BTreeSet<&String> = expected.per_country.keys().map(|(c, _)| c).collect();
    assert!(countries.len() >= 5, "{countries:?}");
    assert!(!countries.contains(&"unknown".to_string()), "{countries:?}");
    assert_same("country_view_counts", &got, &expected.per_country);
}

/// The ratio is compared as `clicked / views` recomputed from the record's counts (JSON
/// floats need not parse back to the last bit).
fn assert_ratio(ctr: Option<f64>, clicked: i64, views: i64, what: &str) {
    let exact = (views > 0).then(|| clicked as f64 / views as f64);
    match (ctr, exact) {
        (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12 * b.max(1.0), "{what}"),
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

fn check_click_through_rates(engine: &LogEngine, expected: &Expected) {
    let got = latest_rates(
        engine,
        activity::CLICK_THROUGH_RATE_TOPIC,
        |k: &PageWindow| (k.page.as_str(), k.start, k.end),
        |v: &ClickThroughRate| (v.page.as_str(), v.start, v.end),
        |v| (v.ctr, (v.views, v.clicked_views, v.clicks)),
    );
    let want = &expected.ctr_per_page;
    // The data has clicked and unclicked views, views resolved by their window closing, and
    // views with several clicks.
    assert!(
        expected.closed_unclicked > 1_000,
        "{}",
        expected.closed_unclicked
    );
    assert!(want.values().any(|(v, c, _)| *c > 0 && c < v));
    assert!(want.values().any(|(_, c, n)| n > c));
    assert_same("click_through_rate", &got, want);
}

fn check_category_click_through_rates(engine: &LogEngine, expected: &Expected) {
    let got = latest_rates(
        engine,
        activity::CATEGORY_CTR_TOPIC,
        |k: &CategoryWindow| (k.category.as_str(), k.start, k.end),
        |v: &CategoryClickThroughRate| (v.category.as_str(), v.start, v.end),
        |v| (v.ctr, (v.views, v.clicked_views, v.clicks)),
    );
    let categories: BTreeSet<&String> = expected.ctr_per_category.keys().map(|(c, _)| c).collect();
    assert!(categories.len() >= 5, "{categories:?}");
    assert_same(
        "category_click_through_rate",
        &got,
        &expected.ctr_per_category,
    );
}

fn check_sessions(engine: &LogEngine, expected: &Expected) {
    let records = read_topic::<SessionKey, UserSession>(engine, activity::USER_SESSIONS_TOPIC);
    let tombstones = records.iter().filter(|(_, v)| v.is_none()).count();
    let got: BTreeMap<(String, i64, i64), (i64, i64)> = latest(records)
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .map(|(k, v)| {
            assert_eq!(
                (v.user_id.as_str(), v.start, v.end, v.duration_ms),
                (k.user_id.as_str(), k.start, k.end, k.end - k.start)
            );
            ((k.user_id, k.start, k.end), (v.views, v.clicks))
        })
        .collect();
    // The data has users with several sessions and sessions that were merged.
    let users: BTreeSet<&String> = expected.sessions.keys().map(|(u, _, _)| u).collect();
    assert!(
        expected.sessions.len() > users.len() + 100,
        "{} sessions",
        expected.sessions.len()
    );
    assert!(tombstones > 0);
    assert_same("user_sessions", &got, &expected.sessions);
}

fn check_alerts(engine: &LogEngine, expected: &Expected) {
    let grace = i64::try_from(app_config().alert_grace.as_millis()).unwrap();
    let records = read_topic::<String, Alert>(engine, activity::ALERTS_TOPIC);
    let mut seen = BTreeSet::new();
    for (user, alert) in records {
        let alert = alert.unwrap();
        assert_eq!(alert.user_id, user);
        assert_eq!(alert.window_end - alert.window_start, ALERT_WINDOW);
        assert!(
            seen.insert((user.clone(), alert.window_start)),
            "second alert {alert:?}"
        );
        let clicks = expected.clicks_per_user_window[&(user, alert.window_start)];
        assert_eq!(alert.clicks, clicks);
        assert!(clicks > THRESHOLD);
        assert!(alert.window_end + grace <= expected.max_ts);
    }
    let sure: BTreeSet<(String, i64)> = expected
        .clicks_per_user_window
        .iter()
        .filter(|((_, start), n)| {
            **n > THRESHOLD && start + ALERT_WINDOW + grace <= expected.min_partition_max_click
        })
        .map(|(k, _)| k.clone())
        .collect();
    assert!(sure.len() >= 5, "{} alerts", sure.len());
    let missing: Vec<_> = sure.difference(&seen).collect();
    assert!(missing.is_empty(), "no alert for {missing:?}");
}
