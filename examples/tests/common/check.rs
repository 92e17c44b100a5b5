//! One run of the activity app on deterministic input, checked as a black box: its input and
//! output topics read back as records (by the `streams` CLI on the embedded engine, by a
//! Kafka consumer on Kafka), every output compared with the recount of the raw input
//! ([`recount`](super::recount)), and how the records of the by-page repartition topic
//! reached their tasks (which, on a failure, tells late records from miscounts). Shared by
//! `activity_deterministic.rs` (embedded engine) and `kafka_deterministic.rs` (three
//! instances on Kafka).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use streams_core::partitioner::partition_for_key;
use streams_examples::activity::{
    self, Activity, Alert, CategoryClickThroughRate, CategoryWindow, Click, ClickThroughRate,
    CountryViewCount, CountryWindow, PageInfo, PageView, PageViewCount, PageWindow, SessionKey,
    UserProfile, UserSession,
};

use super::TopicRecord;
use super::recount::{self, Event, Expected, Reference, Settings, window_start};

/// The by-page repartition topic (`<application.id>-views-by-page-repartition`).
pub(crate) const BY_PAGE_TOPIC: &str = "activity-views-by-page-repartition";
/// The clicks' repartition topic of the view-click join.
pub(crate) const JOIN_CLICKS_TOPIC: &str = "activity-view-click-join-right-repartition";

/// What the topics of a run showed.
pub(crate) struct Checked {
    /// The input topics' records, `page_views`, `clicks`, `users` then `pages`.
    pub(crate) input: Vec<TopicRecord>,
    /// The outputs recomputed from the input.
    pub(crate) expected: Expected,
    /// How the by-page records reached their tasks.
    pub(crate) by_page: ByPage,
    /// Every difference between the outputs and the recount (empty: all exact), with a
    /// diagnosis of late records when there is one.
    pub(crate) failures: Vec<String>,
    /// The figures of the run, for the test's output.
    pub(crate) summary: String,
}

/// Reads a run's topics with `read` (every record of a topic, partition by partition in
/// offset order) and checks them: the `events` input events (views and clicks) keyed by
/// user in the user's partition (murmur2 over `partitions`) with their event time as
/// timestamp, the reference data likewise (profiles keyed by user, pages by page), and every
/// output exactly as recomputed from them (see `recount`), final results and alerts once
/// per window. The by-page repartition topic must still hold its records (turn
/// `streams.repartition.purge` off).
pub(crate) fn check_run(
    read: &dyn Fn(&str) -> Result<Vec<TopicRecord>, String>,
    partitions: u32,
    events: u64,
) -> Result<Checked, String> {
    // The input, as written.
    let views = read(activity::PAGE_VIEWS_TOPIC)?;
    let clicks = read(activity::CLICKS_TOPIC)?;
    let mut failures = Vec::new();
    let mut misplaced = Vec::new();
    let mut input = Vec::new();
    for (r, v) in values::<PageView>(&views)? {
        misplaced.extend(misplaced_input(&r, &v.user_id, v.ts, partitions));
        input.push(Event {
            view: true,
            user: v.user_id,
            page: v.page,
            ts: v.ts,
        });
    }
    for (r, c) in values::<Click>(&clicks)? {
        misplaced.extend(misplaced_input(&r, &c.user_id, c.ts, partitions));
        input.push(Event {
            view: false,
            user: c.user_id,
            page: c.page,
            ts: c.ts,
        });
    }
    if input.len() as u64 != events {
        failures.push(format!(
            "the input topics hold {} events, not {events}",
            input.len()
        ));
    }
    // The reference data, as written (per key in production order).
    let users = read(activity::USERS_TOPIC)?;
    let pages = read(activity::PAGES_TOPIC)?;
    let mut reference = Reference::default();
    for (r, u) in values::<UserProfile>(&users)? {
        misplaced.extend(misplaced_input(&r, &u.user_id, u.ts, partitions));
        reference
            .profiles
            .entry(u.user_id)
            .or_default()
            .push((u.ts, u.country));
    }
    for (r, p) in values::<PageInfo>(&pages)? {
        misplaced.extend(misplaced_input(&r, &p.page, p.ts, partitions));
        reference.categories.insert(p.page, p.category);
    }
    if !misplaced.is_empty() {
        failures.push(recount::listed(
            format!(
                "{} input records are not keyed by their user (page), in its partition, \
                 with their event time, e.g.",
                misplaced.len()
            ),
            &misplaced,
        ));
    }
    if reference.profiles.is_empty() || reference.categories.is_empty() {
        failures.push(format!(
            "no reference data: {} user profiles, {} pages",
            users.len(),
            pages.len()
        ));
    }
    let expected = Expected::from(&input, &reference, partitions, Settings::of_binary());

    // The outputs.
    let counts: Vec<(PageWindow, Option<PageViewCount>)> =
        json_keyed(&read(activity::PAGE_VIEW_COUNTS_TOPIC)?)?;
    failures.extend(recount::check_view_counts(&counts, &expected));
    let finals: Vec<(PageWindow, Option<PageViewCount>)> =
        json_keyed(&read(activity::PAGE_VIEW_COUNTS_FINAL_TOPIC)?)?;
    let (f, finals_summary) = recount::check_final_view_counts(&finals, &expected);
    failures.extend(f);
    let ctr: Vec<(PageWindow, Option<ClickThroughRate>)> =
        json_keyed(&read(activity::CLICK_THROUGH_RATE_TOPIC)?)?;
    failures.extend(recount::check_click_through_rates(&ctr, &expected));
    let countries: Vec<(CountryWindow, Option<CountryViewCount>)> =
        json_keyed(&read(activity::COUNTRY_VIEW_COUNTS_TOPIC)?)?;
    failures.extend(recount::check_country_view_counts(&countries, &expected));
    let categories: Vec<(CategoryWindow, Option<CategoryClickThroughRate>)> =
        json_keyed(&read(activity::CATEGORY_CTR_TOPIC)?)?;
    failures.extend(recount::check_category_click_through_rates(
        &categories,
        &expected,
    ));
    let sessions: Vec<(SessionKey, Option<UserSession>)> =
        json_keyed(&read(activity::USER_SESSIONS_TOPIC)?)?;
    failures.extend(recount::check_sessions(&sessions, &expected));
    let alerts: Vec<(String, Option<Alert>)> = user_keyed(&read(activity::ALERTS_TOPIC)?)?;
    let (f, alerts_summary) = recount::check_alerts(&alerts, &expected);
    failures.extend(f);

    let join_clicks = if partitions == 1 {
        read(JOIN_CLICKS_TOPIC)?
    } else {
        Vec::new()
    };
    let by_page = ByPage::of(&read(BY_PAGE_TOPIC)?, &join_clicks, &expected);
    if !failures.is_empty() {
        let app_counts: BTreeMap<(String, i64), i64> = counts
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| ((k.page.clone(), k.start), v.views)))
            .collect();
        failures.push(by_page.diagnosis(&expected, &app_counts));
    }
    let summary = format!(
        "{} events, {} profile records, {} pages; {finals_summary}; {alerts_summary}; {} \
         sessions; {} country windows, {} page and {} category click-through windows ({}); \
         by-page records up to {:.1} s behind their task's stream time (grace {} s)",
        input.len(),
        users.len(),
        pages.len(),
        expected.sessions.len(),
        expected.per_country.len(),
        expected.ctr_per_page.len(),
        expected.ctr_per_category.len(),
        expected.attribution_summary(),
        by_page.max_behind as f64 / 1000.0,
        expected.settings.grace / 1000
    );
    Ok(Checked {
        input: views
            .into_iter()
            .chain(clicks)
            .chain(users)
            .chain(pages)
            .collect(),
        expected,
        by_page,
        failures,
        summary,
    })
}

/// An input record must be keyed by its user, in the user's partition (murmur2, as a
/// Kafka producer), with the event time as its timestamp; what is wrong otherwise.
fn misplaced_input(r: &TopicRecord, user: &str, ts: i64, partitions: u32) -> Option<String> {
    let want = partition_for_key(user.as_bytes(), partitions);
    (r.key.as_deref() != Some(user) || r.partition != want || r.timestamp != ts)
        .then(|| format!("{r:?}: expected key {user}, partition {want}, timestamp {ts}"))
}

/// The records with their JSON values decoded.
fn values<V: DeserializeOwned>(records: &[TopicRecord]) -> Result<Vec<(TopicRecord, V)>, String> {
    records
        .iter()
        .map(|r| {
            let value = r.value.as_deref().ok_or(format!("a null value: {r:?}"))?;
            let v = serde_json::from_str(value).map_err(|e| format!("{r:?}: {e}"))?;
            Ok((r.clone(), v))
        })
        .collect()
}

/// The records as (key, value) with JSON keys and values, tombstones as `None`, in order.
pub(crate) fn json_keyed<K: DeserializeOwned, V: DeserializeOwned>(
    records: &[TopicRecord],
) -> Result<Vec<(K, Option<V>)>, String> {
    typed(records, |k| {
        serde_json::from_str(k).map_err(|e| e.to_string())
    })
}

/// [`json_keyed`] for topics keyed by user id (UTF-8 text, not JSON).
pub(crate) fn user_keyed<V: DeserializeOwned>(
    records: &[TopicRecord],
) -> Result<Vec<(String, Option<V>)>, String> {
    typed(records, |k| Ok(k.to_string()))
}

fn typed<K, V: DeserializeOwned>(
    records: &[TopicRecord],
    parse_key: impl Fn(&str) -> Result<K, String>,
) -> Result<Vec<(K, Option<V>)>, String> {
    records
        .iter()
        .map(|r| {
            let key = r.key.as_deref().ok_or(format!("a null key: {r:?}"))?;
            let key = parse_key(key).map_err(|e| format!("key of {r:?}: {e}"))?;
            let value = match r.value.as_deref() {
                None => None,
                Some(v) => Some(serde_json::from_str(v).map_err(|e| format!("{r:?}: {e}"))?),
            };
            Ok((key, value))
        })
        .collect()
}

/// How the records of the by-page repartition topic reached their tasks. The records of
/// all upstream tasks interleave there in the order they were produced, and each by-page
/// task reads its partition in offset order, so its stream time after each record is known.
/// A record whose window's `end + grace` is at or before that stream time came after its
/// window closed, and the app must drop it as late.
pub(crate) struct ByPage {
    /// The most any record was behind its partition's stream time, ms: the margin left to
    /// the grace.
    pub(crate) max_behind: i64,
    /// Per partition: the views that came after their window closed, and the most one of
    /// them was behind.
    late: BTreeMap<u32, (u64, i64)>,
    /// The views of each (page, window start) that came in time.
    in_time: BTreeMap<(String, i64), i64>,
    /// With one partition the clicks' repartition topic of the view-click join holds the
    /// clicks in the order the one input task processed them: clicks processed after their
    /// alert window closed, judged by the clicks alone (so at least these), and the most one
    /// was behind.
    late_alert_clicks: (u64, i64),
    /// Records not in their page's partition.
    misplaced: usize,
    records: usize,
}

impl ByPage {
    /// Replays the partitions of `records` (the by-page topic) and, with one partition,
    /// `clicks` (the join's clicks repartition topic) with the settings of `e`.
    pub(crate) fn of(records: &[TopicRecord], clicks: &[TopicRecord], e: &Expected) -> Self {
        let s = e.settings;
        let mut b = ByPage {
            max_behind: 0,
            late: BTreeMap::new(),
            in_time: BTreeMap::new(),
            late_alert_clicks: (0, 0),
            misplaced: 0,
            records: records.len(),
        };
        let mut stream_time: BTreeMap<u32, i64> = BTreeMap::new();
        for r in records {
            let page = r.key.clone().unwrap_or_default();
            if partition_for_key(page.as_bytes(), e.partitions) != r.partition {
                b.misplaced += 1;
            }
            let activity: Activity = r
                .value
                .as_deref()
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default();
            let st = stream_time.entry(r.partition).or_insert(i64::MIN);
            let ts = r.timestamp;
            let behind = st.saturating_sub(ts);
            b.max_behind = b.max_behind.max(behind);
            if window_start(ts, s.window) + s.window + s.grace <= *st {
                let l = b.late.entry(r.partition).or_default();
                l.0 += 1;
                l.1 = l.1.max(behind);
            } else if activity.views > 0 {
                *b.in_time
                    .entry((page.clone(), window_start(ts, s.window)))
                    .or_default() += activity.views;
            }
            *st = (*st).max(ts);
        }
        if e.partitions == 1 {
            let mut st = i64::MIN;
            for r in clicks {
                let ts = r.timestamp;
                if window_start(ts, s.alert_window) + s.alert_window + s.alert_grace <= st {
                    b.late_alert_clicks.0 += 1;
                    b.late_alert_clicks.1 = b.late_alert_clicks.1.max(st - ts);
                }
                st = st.max(ts);
            }
        }
        b
    }

    /// A diagnosis for a failure: which records came after their window closed, how far
    /// behind, and whether the app's latest view counts (`app_counts`) are exactly the
    /// counts of the records that came in time, which tells a by-page task that counted
    /// wrong from records that came too late.
    pub(crate) fn diagnosis(
        &self,
        e: &Expected,
        app_counts: &BTreeMap<(String, i64), i64>,
    ) -> String {
        let s = e.settings;
        let mut lines = vec![format!(
            "diagnosis, from `{BY_PAGE_TOPIC}` (offset order per partition):"
        )];
        if self.late.is_empty() {
            lines.push(format!(
                "  no record came after its window closed ({} records, at most {:.1} s \
                 behind): the by-page tasks had every record in time",
                self.records,
                self.max_behind as f64 / 1000.0
            ));
        }
        for (p, (views, behind)) in &self.late {
            lines.push(format!(
                "  partition {p}: {views} views came after their window closed (up to {:.1} s \
                 behind the partition's stream time, grace {} s): the app must drop them",
                *behind as f64 / 1000.0,
                s.grace / 1000
            ));
        }
        let differ: Vec<String> = self
            .in_time
            .iter()
            .filter(|(k, n)| app_counts.get(*k) != Some(*n))
            .map(|((page, start), n)| {
                format!(
                    "{page} [{start}, {}): {n} views came in time, the app counted {:?}",
                    start + s.window,
                    app_counts.get(&(page.clone(), *start))
                )
            })
            .chain(
                app_counts
                    .iter()
                    .filter(|(k, _)| !self.in_time.contains_key(*k))
                    .map(|((page, start), n)| {
                        format!(
                            "{page} [{start}, {}): no view came in time, the app counted {n}",
                            start + s.window
                        )
                    }),
            )
            .collect();
        if differ.is_empty() {
            let why = if self.late.is_empty() {
                "every view came in time"
            } else {
                "the by-page tasks counted right, the missing views came too late"
            };
            lines.push(format!(
                "  the app's page_view_counts are exactly the views that came in time ({} windows): {why}",
                self.in_time.len()
            ));
        } else {
            lines.push(format!(
                "  the app's page_view_counts differ from the views that came in time in {} windows, e.g.\n    {}",
                differ.len(),
                differ.iter().take(5).cloned().collect::<Vec<_>>().join("\n    ")
            ));
        }
        if e.partitions == 1 {
            lines.push(format!(
                "  the one input task processed at least {} clicks after their alert window \
                 closed (up to {:.1} s behind its stream time, alert grace {} s)",
                self.late_alert_clicks.0,
                self.late_alert_clicks.1 as f64 / 1000.0,
                s.alert_grace / 1000
            ));
        }
        if self.misplaced > 0 {
            lines.push(format!(
                "  {} records are not in their page's partition (murmur2)",
                self.misplaced
            ));
        }
        lines.join("\n")
    }
}
