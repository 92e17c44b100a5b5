//! The input: a deterministic, seeded stream of views and clicks, written into the
//! embedded engine.

use std::collections::BTreeMap;
use std::path::Path;

use streams_core::partitioner::partition_for_key;
use streams_core::runtime::{LogEngine, NewRecord, TopicConfig};

use super::{CLICKS, JOINED, PAGE_COUNTS, PARTITIONS, SuiteError, VIEWS, WINDOW_COUNTS};

/// Distinct users (view and click keys).
const USERS: u64 = 500;
/// Distinct pages.
const PAGES: u64 = 100;
/// Event time between two consecutive views, before jitter.
const STEP_MS: i64 = 10;
/// One view in `JITTER_ONE_IN` is out of order by up to `JITTER_MS`.
const JITTER_ONE_IN: u64 = 50;
/// How far out of order a view may be.
const JITTER_MS: u64 = 2_000;
/// Clicks per 100 views.
const CLICKS_PER_100: u64 = 15;
/// A click comes this long after its view, at least...
const CLICK_DELAY_MIN_MS: u64 = 200;
/// ... and at most.
const CLICK_DELAY_MAX_MS: u64 = 2_000;
/// The last record of every partition is this far past the rest, so that every window of
/// the rest closes and its suppressed count is emitted.
const SENTINEL_AHEAD_MS: i64 = 3_600_000;

/// A seeded pseudo-random generator (SplitMix64), so that a seed gives the same input and
/// the same kill times on every machine.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `[0, n)` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// One input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// [`VIEWS`] or [`CLICKS`].
    pub(crate) topic: &'static str,
    /// The user.
    pub(crate) user: String,
    /// `v<n>:<page>` for a view, `c<n>` for a click on view `n`.
    pub(crate) value: String,
    /// Event time.
    pub(crate) ts: i64,
}

impl Event {
    /// The page of a view.
    pub(crate) fn page(&self) -> &str {
        page_of(&self.value)
    }
}

/// The page of a view's value `v<n>:<page>`.
pub(crate) fn page_of(view: &str) -> &str {
    view.split_once(':').map_or(view, |(_, p)| p)
}

/// A key that [`partition_for_key`] puts on `partition`, for the sentinels.
fn sentinel_user(partition: u32) -> String {
    (0u32..)
        .map(|i| format!("sentinel-{i}"))
        .find(|k| partition_for_key(k.as_bytes(), PARTITIONS) == partition)
        .unwrap_or_default()
}

/// The input, per (topic, partition) in the order written: exactly `records` records.
///
/// Views come every [`STEP_MS`] of event time from `start_ms`, users uniform over
/// [`USERS`], pages skewed over [`PAGES`]; one in [`JITTER_ONE_IN`] is up to [`JITTER_MS`]
/// late. [`CLICKS_PER_100`] of 100 views get a click [`CLICK_DELAY_MIN_MS`] to
/// [`CLICK_DELAY_MAX_MS`] later; a click partition is written in timestamp order. The last
/// record of every partition of both topics is a sentinel view or click of a sentinel user
/// [`SENTINEL_AHEAD_MS`] past the rest, so stream time passes every other window's close.
///
/// Lateness: a task reads a views partition and the clicks partition of the same number
/// and processes the smallest head timestamp first, so its stream time is never more than
/// [`JITTER_MS`] past a record it processes — below both graces, so nothing is dropped.
pub(crate) fn generate_events(
    records: usize,
    seed: u64,
    start_ms: i64,
) -> BTreeMap<(&'static str, u32), Vec<Event>> {
    let sentinels = 2 * PARTITIONS as usize;
    let body = records.saturating_sub(sentinels);
    let mut rng = SplitMix::new(seed);
    let mut views: Vec<Event> = Vec::new();
    let mut clicks: Vec<Event> = Vec::new();
    let mut base = start_ms;
    let mut n = 0u64;
    while views.len() + clicks.len() < body {
        base += STEP_MS;
        let late = if rng.below(JITTER_ONE_IN) == 0 {
            rng.below(JITTER_MS + 1) as i64
        } else {
            0
        };
        let user = format!("user-{:03}", rng.below(USERS));
        // Skewed: the smaller of two uniform draws.
        let page = rng.below(PAGES).min(rng.below(PAGES));
        let ts = base - late;
        let clicked = rng.below(100) < CLICKS_PER_100;
        let delay = CLICK_DELAY_MIN_MS + rng.below(CLICK_DELAY_MAX_MS - CLICK_DELAY_MIN_MS + 1);
        views.push(Event {
            topic: VIEWS,
            user: user.clone(),
            value: format!("v{n}:/p/{page}"),
            ts,
        });
        if clicked && views.len() + clicks.len() < body {
            clicks.push(Event {
                topic: CLICKS,
                user,
                value: format!("c{n}"),
                ts: ts + delay as i64,
            });
        }
        n += 1;
    }
    let mut out: BTreeMap<(&'static str, u32), Vec<Event>> = BTreeMap::new();
    for topic in [VIEWS, CLICKS] {
        for p in 0..PARTITIONS {
            out.insert((topic, p), Vec::new());
        }
    }
    for e in views.into_iter().chain(clicks) {
        let p = partition_for_key(e.user.as_bytes(), PARTITIONS);
        out.entry((e.topic, p)).or_default().push(e);
    }
    for ((topic, _), events) in out.iter_mut() {
        if *topic == CLICKS {
            events.sort_by_key(|e| e.ts);
        }
    }
    let far = base + SENTINEL_AHEAD_MS;
    for p in 0..PARTITIONS {
        let user = sentinel_user(p);
        let view = n + u64::from(p);
        out.entry((VIEWS, p)).or_default().push(Event {
            topic: VIEWS,
            user: user.clone(),
            value: format!("v{view}:/p/sentinel"),
            ts: far,
        });
        out.entry((CLICKS, p)).or_default().push(Event {
            topic: CLICKS,
            user,
            value: format!("c{view}"),
            ts: far,
        });
    }
    out
}

/// Creates the topics and writes the input into the engine at `dir`/log; fails if the
/// input topic exists already.
pub(crate) fn generate(
    dir: &Path,
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
) -> Result<(), SuiteError> {
    let engine = LogEngine::open(&dir.join("log"))?;
    if engine.topic_config(VIEWS).is_some() {
        return Err(SuiteError::Usage(format!(
            "{} already holds an input; use a new --dir",
            dir.display()
        )));
    }
    for topic in [VIEWS, CLICKS, PAGE_COUNTS, WINDOW_COUNTS, JOINED] {
        engine.create_topic(topic, TopicConfig::new(PARTITIONS))?;
    }
    for ((topic, p), list) in events {
        for chunk in list.chunks(1_000) {
            let batch: Vec<NewRecord> = chunk
                .iter()
                .map(|e| NewRecord {
                    timestamp: e.ts,
                    key: Some(e.user.clone().into_bytes()),
                    value: Some(e.value.clone().into_bytes()),
                    headers: Vec::new(),
                })
                .collect();
            engine.append(topic, *p, &batch)?;
        }
    }
    engine.flush()?;
    Ok(())
}

/// Wall-clock time now, truncated to the hour: the default event-time start. Event time
/// near the wall clock keeps the window changelogs' time retention (window retention plus
/// a day) from deleting the input's state while the suite runs.
pub(crate) fn default_start_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    now - now.rem_euclid(3_600_000)
}
