//! The activity app's outputs recomputed from its raw input events with plain maps (no DSL,
//! no topology), and checks of the records of each output topic against them that return
//! every difference as a readable failure (the first few examples of each kind).
//!
//! The definitions are those of `examples/src/activity/topology.rs` and docs/ACTIVITY.md:
//! tumbling, epoch-aligned, end-exclusive windows; views per page per window; views per
//! country per window, the country being the user's profile at the view's time (the latest
//! `users` record before it); click-through rates per page and per page category (from the
//! `pages` catalogue) per window of the views: a view is resolved once it has a click of
//! the same user and page within the click window on either side, or once its join task's
//! stream time passed its time + click window + click grace; a resolved view counts once,
//! as clicked if a click came at or after it within the click window, and each such click
//! counts; sessions of a user's views and clicks split where the pause exceeds the gap;
//! alerts for more than the threshold clicks of a user in one alert window; final results
//! and alerts only for closed windows (stream time reached end + grace), one record per
//! window.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;

use streams_core::partitioner::partition_for_key;
use streams_examples::activity::{
    ActivityConfig, ActivityEvent, Alert, CategoryClickThroughRate, CategoryWindow,
    ClickThroughRate, CountryViewCount, CountryWindow, PageViewCount, PageWindow, SessionKey,
    UNKNOWN, UserPage, UserSession,
};

/// How many examples a failure lists.
const EXAMPLES: usize = 5;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}

/// The app's window settings in ms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) window: i64,
    pub(crate) grace: i64,
    pub(crate) gap: i64,
    pub(crate) alert_window: i64,
    pub(crate) alert_grace: i64,
    pub(crate) threshold: i64,
    /// The view-click join: a click within this of a view (either side) pairs with it.
    pub(crate) click_window: i64,
    pub(crate) click_grace: i64,
}

impl Settings {
    /// The settings of the `activity` binary (`ActivityConfig::default()`).
    pub(crate) fn of_binary() -> Self {
        let c = ActivityConfig::default();
        Self {
            window: ms(c.window_size),
            grace: ms(c.grace),
            gap: ms(c.session_gap),
            alert_window: ms(c.alert_window),
            alert_grace: ms(c.alert_grace),
            threshold: c.alert_threshold,
            click_window: ms(c.click_window),
            click_grace: ms(c.click_grace),
        }
    }
}

/// One input event: a page view or a click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) view: bool,
    pub(crate) user: String,
    pub(crate) page: String,
    pub(crate) ts: i64,
}

impl Event {
    /// The event of a generated view or click.
    pub(crate) fn of(e: &ActivityEvent) -> Self {
        Self {
            view: matches!(e, ActivityEvent::PageView(_)),
            user: e.user_id().to_string(),
            page: e.page().to_string(),
            ts: e.ts(),
        }
    }
}

/// The reference data of a run, as written: every user's profiles (time, country) in topic
/// order, and every page's category.
#[derive(Debug, Default)]
pub(crate) struct Reference {
    pub(crate) profiles: BTreeMap<String, Vec<(i64, String)>>,
    pub(crate) categories: BTreeMap<String, String>,
}

impl Reference {
    /// The country of `user` at `ts`: the latest profile at or before it (`unknown`
    /// without one).
    fn country(&self, user: &str, ts: i64) -> &str {
        self.profiles
            .get(user)
            .and_then(|p| p.iter().rev().find(|(t, _)| *t <= ts))
            .map_or(UNKNOWN, |(_, c)| c.as_str())
    }

    /// Whether a profile of `user` has the time `ts` (a view at that time could see it or
    /// not, depending on which topic the app's task took first).
    fn changes_at(&self, user: &str, ts: i64) -> bool {
        self.profiles
            .get(user)
            .is_some_and(|p| p.iter().any(|(t, _)| *t == ts))
    }

    fn category(&self, page: &str) -> &str {
        self.categories.get(page).map_or(UNKNOWN, String::as_str)
    }
}

/// The start of the window of `size` that holds `ts`.
pub(crate) fn window_start(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

/// A page's window, for messages.
fn page_window(page: &str, start: i64, size: i64) -> String {
    format!("{page} [{start}, {})", start + size)
}

/// What the app must compute from the input, and when its windows close.
#[derive(Debug)]
pub(crate) struct Expected {
    pub(crate) settings: Settings,
    pub(crate) partitions: u32,
    /// (page, window start) -> (views, clicks).
    pub(crate) per_page: BTreeMap<(String, i64), (i64, i64)>,
    /// (country, window start) -> views.
    pub(crate) per_country: BTreeMap<(String, i64), i64>,
    /// (page, window start of the views) -> (resolved views, clicked views, attributed
    /// clicks).
    pub(crate) ctr_per_page: BTreeMap<(String, i64), (i64, i64, i64)>,
    /// The same per page category.
    pub(crate) ctr_per_category: BTreeMap<(String, i64), (i64, i64, i64)>,
    /// Distinct views (user, page, time) by how they stand at the end: resolved by a
    /// partner, resolved because their window closed without one, unresolved.
    pub(crate) views_paired: usize,
    pub(crate) views_closed_unpaired: usize,
    pub(crate) views_unresolved: usize,
    /// Views at the very time of a profile change of their user: ambiguous.
    pub(crate) views_at_profile_change: usize,
    /// (user, first event, last event) -> (views, clicks).
    pub(crate) sessions: BTreeMap<(String, i64, i64), (i64, i64)>,
    /// (user, alert window start) -> clicks.
    pub(crate) clicks_per_user_window: BTreeMap<(String, i64), i64>,
    /// The latest view of each partition of the by-page repartition topic (a page's
    /// partition is murmur2 of its name; only views are counted).
    pub(crate) latest_view: Vec<i64>,
    /// The latest event (view or click) of each by-page partition: its task's stream time.
    pub(crate) latest_by_page: Vec<i64>,
    /// The latest click of each input partition (a user's partition is murmur2 of the user
    /// id; only clicks are counted for alerts).
    pub(crate) latest_click: Vec<i64>,
    /// The latest event of each input partition: its task's stream time.
    pub(crate) latest_by_user: Vec<i64>,
    pub(crate) views: i64,
    pub(crate) clicks: i64,
    /// Every window has closed (see [`Self::all_closed`]).
    all_closed: bool,
}

/// When the windows of one task close: a window whose `end + grace` is at or before `sure`
/// has closed whatever the order of processing; one after `latest` (the stream time the
/// task reached) cannot have closed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closing {
    pub(crate) sure: i64,
    pub(crate) latest: i64,
}

impl Closing {
    /// Every window has closed.
    const ALL: Closing = Closing {
        sure: i64::MAX,
        latest: i64::MAX,
    };

    /// How far the task's stream time went, for messages.
    fn reached(&self) -> String {
        if self.latest == i64::MAX {
            "every window has closed".into()
        } else {
            format!("its task's stream time reached {}", self.latest)
        }
    }
}

impl Expected {
    /// The outputs of `events` and the reference data on `partitions` partitions.
    pub(crate) fn from(
        events: &[Event],
        reference: &Reference,
        partitions: u32,
        settings: Settings,
    ) -> Self {
        let mut e = Expected {
            settings,
            partitions,
            per_page: BTreeMap::new(),
            per_country: BTreeMap::new(),
            ctr_per_page: BTreeMap::new(),
            ctr_per_category: BTreeMap::new(),
            views_paired: 0,
            views_closed_unpaired: 0,
            views_unresolved: 0,
            views_at_profile_change: 0,
            sessions: BTreeMap::new(),
            clicks_per_user_window: BTreeMap::new(),
            latest_view: vec![i64::MIN; partitions as usize],
            latest_by_page: vec![i64::MIN; partitions as usize],
            latest_click: vec![i64::MIN; partitions as usize],
            latest_by_user: vec![i64::MIN; partitions as usize],
            views: 0,
            clicks: 0,
            all_closed: false,
        };
        let mut per_user: BTreeMap<&str, Vec<(i64, bool)>> = BTreeMap::new();
        for ev in events {
            let by_page = e.page_partition(&ev.page);
            let by_user = e.user_partition(&ev.user);
            e.latest_by_page[by_page] = e.latest_by_page[by_page].max(ev.ts);
            e.latest_by_user[by_user] = e.latest_by_user[by_user].max(ev.ts);
            let slot = e
                .per_page
                .entry((ev.page.clone(), window_start(ev.ts, settings.window)))
                .or_default();
            if ev.view {
                slot.0 += 1;
                e.views += 1;
                e.latest_view[by_page] = e.latest_view[by_page].max(ev.ts);
            } else {
                slot.1 += 1;
                e.clicks += 1;
                e.latest_click[by_user] = e.latest_click[by_user].max(ev.ts);
                *e.clicks_per_user_window
                    .entry((ev.user.clone(), window_start(ev.ts, settings.alert_window)))
                    .or_default() += 1;
            }
            per_user.entry(&ev.user).or_default().push((ev.ts, ev.view));
            if ev.view {
                *e.per_country
                    .entry((
                        reference.country(&ev.user, ev.ts).to_string(),
                        window_start(ev.ts, settings.window),
                    ))
                    .or_default() += 1;
                if reference.changes_at(&ev.user, ev.ts) {
                    e.views_at_profile_change += 1;
                }
            }
        }
        e.attribute_clicks(events, reference);
        // Sessions: a user's events in time order, split where the pause exceeds the gap (a
        // pause of exactly the gap keeps the session).
        for (user, mut evs) in per_user {
            evs.sort_unstable();
            let mut current: Option<(i64, i64, i64, i64)> = None;
            for (ts, view) in evs {
                let (v, c) = if view { (1, 0) } else { (0, 1) };
                current = match current {
                    Some((start, end, views, clicks)) if ts - end <= settings.gap => {
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
        e
    }

    /// The click-through rates: the view-click join by (user, page) with the click window
    /// on either side of a view, its tasks' stream time (the partition of the join key, JSON
    /// `UserPage`, over the same partition count), and the attribution of each view once.
    fn attribute_clicks(&mut self, events: &[Event], reference: &Reference) {
        let s = self.settings;
        let mut clicks: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
        let mut views: BTreeSet<(&str, &str, i64)> = BTreeSet::new();
        let mut join_time = vec![i64::MIN; self.partitions as usize];
        for ev in events {
            let p = self.join_partition(&ev.user, &ev.page);
            join_time[p] = join_time[p].max(ev.ts);
            if ev.view {
                views.insert((&ev.user, &ev.page, ev.ts));
            } else {
                clicks.entry((&ev.user, &ev.page)).or_default().push(ev.ts);
            }
        }
        for c in clicks.values_mut() {
            c.sort_unstable();
        }
        for (user, page, ts) in views {
            let partners = clicks.get(&(user, page)).map_or(&[][..], Vec::as_slice);
            let within =
                |from: i64, to: i64| partners.iter().filter(|c| (from..=to).contains(*c)).count();
            let paired = within(ts - s.click_window, ts + s.click_window) > 0;
            let closed =
                ts + s.click_window + s.click_grace < join_time[self.join_partition(user, page)];
            if paired {
                self.views_paired += 1;
            } else if closed {
                self.views_closed_unpaired += 1;
            } else {
                self.views_unresolved += 1;
                continue;
            }
            let attributed = i64::try_from(within(ts, ts + s.click_window)).unwrap_or(0);
            let add = |slot: &mut (i64, i64, i64)| {
                slot.0 += 1;
                slot.1 += i64::from(attributed > 0);
                slot.2 += attributed;
            };
            let start = window_start(ts, s.window);
            add(self
                .ctr_per_page
                .entry((page.to_string(), start))
                .or_default());
            add(self
                .ctr_per_category
                .entry((reference.category(page).to_string(), start))
                .or_default());
        }
    }

    /// The partition of the view-click join's task for (user, page).
    fn join_partition(&self, user: &str, page: &str) -> usize {
        let key = serde_json::to_vec(&UserPage {
            user_id: user.to_string(),
            page: page.to_string(),
        })
        .unwrap();
        partition_for_key(&key, self.partitions) as usize
    }

    /// The same, for an app whose tasks' stream time went past every window: with idle
    /// advance (the binary's default outside deterministic mode) it follows the wall clock
    /// once input stops, so every window closes and every final result and alert is due.
    pub(crate) fn all_closed(self) -> Self {
        Self {
            all_closed: true,
            ..self
        }
    }

    fn page_partition(&self, page: &str) -> usize {
        partition_for_key(page.as_bytes(), self.partitions) as usize
    }

    fn user_partition(&self, user: &str) -> usize {
        partition_for_key(user.as_bytes(), self.partitions) as usize
    }

    /// When the view-count windows of `page` close. The suppression closes a window once
    /// the time it observed (the largest timestamp of the count updates that reached it)
    /// reaches `end + grace`. The latest view of the page's partition is counted, and the
    /// update of its window, whose timestamp is at least that window's start, reaches the
    /// suppression at the latest when the app commits on close: that start is `sure`. The
    /// task's stream time, its latest view or click, is `latest`.
    pub(crate) fn page_closing(&self, page: &str) -> Closing {
        if self.all_closed {
            return Closing::ALL;
        }
        let p = self.page_partition(page);
        Closing {
            sure: window_start(self.latest_view[p], self.settings.window),
            latest: self.latest_by_page[p],
        }
    }

    /// When the alert windows of `user` close: as [`Self::page_closing`], with the clicks
    /// and the events of the user's input partition and alert windows.
    pub(crate) fn user_closing(&self, user: &str) -> Closing {
        if self.all_closed {
            return Closing::ALL;
        }
        let p = self.user_partition(user);
        Closing {
            sure: window_start(self.latest_click[p], self.settings.alert_window),
            latest: self.latest_by_user[p],
        }
    }

    /// The page windows whose final result must be on `page_view_counts_final`.
    pub(crate) fn closed_page_windows(&self) -> BTreeSet<(String, i64)> {
        let s = self.settings;
        self.per_page
            .iter()
            .filter(|((page, start), (views, _))| {
                *views > 0 && start + s.window + s.grace <= self.page_closing(page).sure
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The alerts that must be on `alerts`: (user, window start) -> clicks.
    pub(crate) fn closed_alerts(&self) -> BTreeMap<(String, i64), i64> {
        let s = self.settings;
        self.clicks_per_user_window
            .iter()
            .filter(|((user, start), n)| {
                **n > s.threshold
                    && start + s.alert_window + s.alert_grace <= self.user_closing(user).sure
            })
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }
}

/// "N things, e.g." followed by the first examples, one per line.
pub(crate) fn listed(what: String, examples: &[String]) -> String {
    let mut out = what;
    for e in examples.iter().take(EXAMPLES) {
        out.push_str("\n    ");
        out.push_str(e);
    }
    if examples.len() > EXAMPLES {
        out.push_str(&format!("\n    ... and {} more", examples.len() - EXAMPLES));
    }
    out
}

/// The latest value per key, in topic order (per key that is production order).
fn latest<K: Ord + Clone, V: Clone>(records: &[(K, Option<V>)]) -> BTreeMap<K, Option<V>> {
    records.iter().cloned().collect()
}

/// Compares a table (the latest value per key) with what it should be; a failure lists
/// wrong, missing and unexpected keys.
fn compare<K: Ord + Debug, V: PartialEq + Debug>(
    what: &str,
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
    show: impl Fn(&K) -> String,
) -> Option<String> {
    let mut wrong = Vec::new();
    let mut missing = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => missing.push(format!("{}: expected {v:?}, missing", show(k))),
            Some(g) if g != v => wrong.push(format!("{}: expected {v:?}, got {g:?}", show(k))),
            Some(_) => {}
        }
    }
    let extra: Vec<String> = got
        .iter()
        .filter(|(k, _)| !want.contains_key(k))
        .map(|(k, g)| format!("{}: not expected, got {g:?}", show(k)))
        .collect();
    if wrong.is_empty() && missing.is_empty() && extra.is_empty() {
        return None;
    }
    let mut examples = wrong.clone();
    examples.extend(missing.iter().cloned());
    examples.extend(extra.iter().cloned());
    Some(listed(
        format!(
            "{what}: {} keys with a wrong value, {} missing, {} unexpected (of {} expected), e.g.",
            wrong.len(),
            missing.len(),
            extra.len(),
            want.len()
        ),
        &examples,
    ))
}

/// A record's window: its name (page, country, category), start and end.
type Window<'a> = (&'a str, i64, i64);

/// The latest value of every key of a windowed table by (name, window start); a key whose
/// latest value is null or names another window is a failure.
fn latest_windows<K: Ord + Clone + Debug, V: Clone + Debug>(
    topic: &str,
    records: &[(K, Option<V>)],
    key: impl Fn(&K) -> Window<'_>,
    value: impl Fn(&V) -> Window<'_>,
    failures: &mut Vec<String>,
) -> BTreeMap<(String, i64), V> {
    let mut got = BTreeMap::new();
    for (k, v) in latest(records) {
        match v {
            Some(v) if value(&v) == key(&k) => {
                let (name, start, _) = key(&k);
                got.insert((name.to_string(), start), v);
            }
            other => failures.push(format!("{topic}: {k:?} holds {other:?}")),
        }
    }
    got
}

/// [`compare`] for tables by (name, window start) of windows of `size`.
fn compare_windows<V: PartialEq + Debug>(
    what: &str,
    got: &BTreeMap<(String, i64), V>,
    want: &BTreeMap<(String, i64), V>,
    size: i64,
) -> Option<String> {
    compare(what, got, want, |(name, start)| {
        page_window(name, *start, size)
    })
}

/// `page_view_counts`: the latest count of every window with views is its exact count.
pub(crate) fn check_view_counts(
    records: &[(PageWindow, Option<PageViewCount>)],
    e: &Expected,
) -> Vec<String> {
    let mut failures = Vec::new();
    let got: BTreeMap<_, _> = latest_windows(
        "page_view_counts",
        records,
        |k| (k.page.as_str(), k.start, k.end),
        |v| (v.page.as_str(), v.start, v.end),
        &mut failures,
    )
    .into_iter()
    .map(|(k, v)| (k, v.views))
    .collect();
    let counted: i64 = got.values().sum();
    let want: BTreeMap<(String, i64), i64> = e
        .per_page
        .iter()
        .filter(|(_, (views, _))| *views > 0)
        .map(|(k, (views, _))| (k.clone(), *views))
        .collect();
    if let Some(f) = compare_windows("page_view_counts (views)", &got, &want, e.settings.window) {
        failures.push(format!(
            "{f}\n  (the latest counts add up to {counted} of the input's {} views)",
            e.views
        ));
    }
    failures
}

/// A topic of final results: one record per closed window (of `size` and `grace`) with the
/// window's count of `unit`.
struct Finals<'a> {
    topic: &'a str,
    unit: &'a str,
    size: i64,
    grace: i64,
    /// Results are due only above this count (alerts).
    above: Option<i64>,
}

impl Finals<'_> {
    /// Checks the well-formed records' counts by (name, window start) and the malformed
    /// records of `records` records: one record per window, the window's exact count
    /// (`expected`), only for closed windows (`closing` of the name) and every window of
    /// `required` present. Returns the failures and a summary.
    fn check(
        &self,
        records: usize,
        emitted: &BTreeMap<(String, i64), Vec<i64>>,
        malformed: &[String],
        expected: impl Fn(&(String, i64)) -> i64,
        closing: impl Fn(&str) -> Closing,
        required: &BTreeSet<(String, i64)>,
    ) -> (Vec<String>, String) {
        let (topic, unit) = (self.topic, self.unit);
        let show = |(name, start): &(String, i64)| page_window(name, *start, self.size);
        let closes = |(_, start): &(String, i64)| start + self.size + self.grace;
        let mut failures = Vec::new();
        let mut fail = |header: String, examples: Vec<String>| {
            if !examples.is_empty() {
                failures.push(listed(header, &examples));
            }
        };
        fail(
            format!(
                "{topic}: {} records whose value is null or does not match its key or the \
                 window size, e.g.",
                malformed.len()
            ),
            malformed.to_vec(),
        );
        let twice: Vec<String> = emitted
            .iter()
            .filter(|(_, counts)| counts.len() > 1)
            .map(|(k, counts)| {
                format!(
                    "{}: {} results with {counts:?} {unit} (expected one, {})",
                    show(k),
                    counts.len(),
                    expected(k)
                )
            })
            .collect();
        fail(
            format!(
                "{topic}: {} windows emitted more than once, e.g.",
                twice.len()
            ),
            twice,
        );
        let due = |k: &(String, i64)| self.above.is_none_or(|above| expected(k) > above);
        let above = self
            .above
            .map_or(String::new(), |above| format!(" (a result above {above})"));
        let wrong: Vec<String> = emitted
            .iter()
            .filter(|(k, counts)| counts.iter().any(|c| *c != expected(k)) || !due(k))
            .map(|(k, counts)| {
                format!(
                    "{}: expected {} {unit}{above}, got {counts:?}",
                    show(k),
                    expected(k)
                )
            })
            .collect();
        fail(
            format!(
                "{topic}: {} of {} emitted windows have a wrong count or should not exist, e.g.",
                wrong.len(),
                emitted.len()
            ),
            wrong,
        );
        let unclosed: Vec<String> = emitted
            .keys()
            .filter(|k| closes(k) > closing(&k.0).latest)
            .map(|k| {
                format!(
                    "{}: end + grace {} is after the stream time of its task, {}",
                    show(k),
                    closes(k),
                    closing(&k.0).latest
                )
            })
            .collect();
        fail(
            format!(
                "{topic}: {} results for windows that cannot have closed, e.g.",
                unclosed.len()
            ),
            unclosed,
        );
        let missing: Vec<String> = required
            .iter()
            .filter(|k| !emitted.contains_key(*k))
            .map(|k| {
                format!(
                    "{}: {} {unit}, closed at {} ({})",
                    show(k),
                    expected(k),
                    closes(k),
                    closing(&k.0).reached()
                )
            })
            .collect();
        fail(
            format!(
                "{topic}: {} of the {} windows that must have closed have no result, e.g.",
                missing.len(),
                required.len()
            ),
            missing,
        );
        let summary = format!(
            "{topic}: {} windows emitted ({records} records; {} windows required)",
            emitted.len(),
            required.len()
        );
        (failures, summary)
    }
}

/// `page_view_counts_final`: one record per window, the window's exact count, only for
/// closed windows, and every window that must have closed present. Returns the failures
/// and a summary (how many finals, how many were required).
pub(crate) fn check_final_view_counts(
    records: &[(PageWindow, Option<PageViewCount>)],
    e: &Expected,
) -> (Vec<String>, String) {
    let s = e.settings;
    let mut emitted: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    let mut malformed = Vec::new();
    for (k, v) in records {
        match v {
            Some(v)
                if (v.page.as_str(), v.start, v.end) == (k.page.as_str(), k.start, k.end)
                    && k.end - k.start == s.window =>
            {
                emitted
                    .entry((k.page.clone(), k.start))
                    .or_default()
                    .push(v.views);
            }
            other => malformed.push(format!("{k:?}: {other:?}")),
        }
    }
    let finals = Finals {
        topic: "page_view_counts_final",
        unit: "views",
        size: s.window,
        grace: s.grace,
        above: None,
    };
    finals.check(
        records.len(),
        &emitted,
        &malformed,
        |k| e.per_page.get(k).map_or(0, |(views, _)| *views),
        |page| e.page_closing(page),
        &e.closed_page_windows(),
    )
}

/// Whether `ctr` is `clicked / views` (null without views), recomputed from the record's own
/// counts (a JSON float need not parse back to the last bit).
fn ratio_fits(ctr: Option<f64>, clicked: i64, views: i64) -> bool {
    match (ctr, views) {
        (None, 0) => true,
        (Some(ctr), views) if views > 0 => {
            let exact = clicked as f64 / views as f64;
            (ctr - exact).abs() <= 1e-12 * exact.max(1.0)
        }
        _ => false,
    }
}

/// A click-through-rate table (`topic`): the latest record of every window with a resolved
/// view has the window's exact resolved views, clicked views and attributed clicks
/// (`want`), and `ctr` = clicked views / views (`rate` gives both of a record); no other
/// window has a record.
fn check_rates<K: Ord + Clone + Debug, V: Clone + Debug>(
    topic: &str,
    records: &[(K, Option<V>)],
    key: impl Fn(&K) -> Window<'_>,
    value: impl Fn(&V) -> Window<'_>,
    rate: impl Fn(&V) -> (Option<f64>, (i64, i64, i64)),
    want: &BTreeMap<(String, i64), (i64, i64, i64)>,
    e: &Expected,
) -> Vec<String> {
    let mut failures = Vec::new();
    let got = latest_windows(topic, records, key, value, &mut failures)
        .into_iter()
        .map(|(k, v)| {
            let (ctr, (views, clicked_views, clicks)) = rate(&v);
            if !ratio_fits(ctr, clicked_views, views) {
                failures.push(format!("{topic}: {k:?}: ctr does not fit {v:?}"));
            }
            (k, (views, clicked_views, clicks))
        })
        .collect();
    let what = format!("{topic} (views, clicked views, clicks)");
    if let Some(f) = compare_windows(&what, &got, want, e.settings.window) {
        failures.push(format!("{f}\n  ({})", e.attribution_summary()));
    }
    failures
}

/// `click_through_rate`: as [`check_rates`], per page.
pub(crate) fn check_click_through_rates(
    records: &[(PageWindow, Option<ClickThroughRate>)],
    e: &Expected,
) -> Vec<String> {
    check_rates(
        "click_through_rate",
        records,
        |k| (k.page.as_str(), k.start, k.end),
        |v| (v.page.as_str(), v.start, v.end),
        |v| (v.ctr, (v.views, v.clicked_views, v.clicks)),
        &e.ctr_per_page,
        e,
    )
}

/// `category_click_through_rate`: as [`check_rates`], per page category.
pub(crate) fn check_category_click_through_rates(
    records: &[(CategoryWindow, Option<CategoryClickThroughRate>)],
    e: &Expected,
) -> Vec<String> {
    check_rates(
        "category_click_through_rate",
        records,
        |k| (k.category.as_str(), k.start, k.end),
        |v| (v.category.as_str(), v.start, v.end),
        |v| (v.ctr, (v.views, v.clicked_views, v.clicks)),
        &e.ctr_per_category,
        e,
    )
}

/// `country_view_counts`: the latest count of every country and window is its exact count
/// (each view counted under its user's country at the view's time).
pub(crate) fn check_country_view_counts(
    records: &[(CountryWindow, Option<CountryViewCount>)],
    e: &Expected,
) -> Vec<String> {
    let mut failures = Vec::new();
    let got = latest_windows(
        "country_view_counts",
        records,
        |k| (k.country.as_str(), k.start, k.end),
        |v| (v.country.as_str(), v.start, v.end),
        &mut failures,
    )
    .into_iter()
    .map(|(k, v)| (k, v.views))
    .collect();
    if e.views_at_profile_change > 0 {
        failures.push(format!(
            "the input has {} views at the very time of their user's profile change: which \
             country they get depends on the order the app's task took the topics in",
            e.views_at_profile_change
        ));
    }
    let what = "country_view_counts (views)";
    if let Some(f) = compare_windows(what, &got, &e.per_country, e.settings.window) {
        failures.push(f);
    }
    failures
}

impl Expected {
    /// How the views stand at the end, for messages.
    pub(crate) fn attribution_summary(&self) -> String {
        format!(
            "of the input's distinct views, {} were paired with a click, {} resolved unpaired \
             once their window closed, {} still waited in the join",
            self.views_paired, self.views_closed_unpaired, self.views_unresolved
        )
    }
}

/// `user_sessions`: the sessions still standing (latest value per key not null) are exactly
/// the sessions of the input, with their views and clicks.
pub(crate) fn check_sessions(
    records: &[(SessionKey, Option<UserSession>)],
    e: &Expected,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut got = BTreeMap::new();
    for (k, v) in latest(records) {
        let Some(v) = v else { continue };
        if (v.user_id.as_str(), v.start, v.end, v.duration_ms)
            != (k.user_id.as_str(), k.start, k.end, k.end - k.start)
        {
            failures.push(format!("user_sessions: {k:?} holds {v:?}"));
        }
        got.insert((k.user_id, k.start, k.end), (v.views, v.clicks));
    }
    let show = |(user, start, end): &(String, i64, i64)| format!("{user} [{start}, {end}]");
    if let Some(f) = compare("user_sessions (views, clicks)", &got, &e.sessions, show) {
        failures.push(f);
    }
    failures
}

/// `alerts`: one alert per user and closed alert window over the threshold, with the exact
/// clicks, only for closed windows, and every alert that must have been raised present.
/// Returns the failures and a summary.
pub(crate) fn check_alerts(
    records: &[(String, Option<Alert>)],
    e: &Expected,
) -> (Vec<String>, String) {
    let s = e.settings;
    let mut emitted: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    let mut malformed = Vec::new();
    for (user, alert) in records {
        match alert {
            Some(a) if a.user_id == *user && a.window_end - a.window_start == s.alert_window => {
                emitted
                    .entry((user.clone(), a.window_start))
                    .or_default()
                    .push(a.clicks);
            }
            other => malformed.push(format!("{user}: {other:?}")),
        }
    }
    let finals = Finals {
        topic: "alerts",
        unit: "clicks",
        size: s.alert_window,
        grace: s.alert_grace,
        above: Some(s.threshold),
    };
    finals.check(
        records.len(),
        &emitted,
        &malformed,
        |k| e.clicks_per_user_window.get(k).copied().unwrap_or(0),
        |user| e.user_closing(user),
        &e.closed_alerts().into_keys().collect(),
    )
}
