//! Input for the activity app: a seeded generator of realistic page views and clicks, a rate
//! limiter for real-time mode, recordings (JSON lines) and their replay, and writing events
//! to the embedded log engine.
//!
//! The generator simulates visits: a visit (session) starts at random times (a Poisson
//! process whose rate gives the configured events per second of *event time*), by a user
//! drawn with a Zipf-like skew (some users come back often, most rarely), and is a burst of
//! page views about 40 s apart. Pages are Zipf-distributed. After each view the user clicks
//! on the page with [`GeneratorConfig::click_probability`] (and sometimes clicks twice).
//! A small share of users ([`GeneratorConfig::bot_share`]) are bots: their visits are one
//! view followed by 22 to 45 clicks 40 to 150 ms apart. Events come out in event-time order.
//!
//! Reference data comes with it: every user has a profile (a country, a signup cohort) and
//! every page a category. [`ActivityGenerator::catalogue`] gives them all as input records
//! dated just before the first event, to be written first; [`ActivityGenerator::records`]
//! yields the events together with profile updates (a user who moves to another country,
//! written just before the visit that follows the move). Reference data is drawn from its
//! own seeded stream, so the views and clicks are those of the same seed without it.
//!
//! ```
//! use streams_examples::activity::generator::{ActivityGenerator, GeneratorConfig};
//! let config = GeneratorConfig { seed: 7, ..GeneratorConfig::default() };
//! let a: Vec<_> = ActivityGenerator::new(config.clone()).take(100).collect();
//! let b: Vec<_> = ActivityGenerator::new(config).take(100).collect();
//! assert_eq!(a, b);                                          // seeded
//! assert!(a.windows(2).all(|w| w[0].ts() <= w[1].ts()));     // time-ordered
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use streams_core::client::{Admin, ClientError, NewTopic, OutgoingRecord, TopicPartition};
use streams_core::partitioner::partition_for_key;
use streams_core::runtime::{LogEngine, NewRecord, TopicConfig};

use super::model::{ActivityEvent, Click, InputRecord, PageInfo, PageView, UserProfile};
use super::{ActivityError, CLICKS_TOPIC, PAGE_VIEWS_TOPIC, PAGES_TOPIC, Result, USERS_TOPIC};
use crate::{Rng, Zipf};

/// The generator's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// The seed: the same seed (and settings) gives the same events.
    pub seed: u64,
    /// Users `user-0` .. `user-{users-1}`. Default: 10 000.
    pub users: u64,
    /// Pages `/p/0` .. `/p/{pages-1}`, `/p/0` the most popular. Default: 1 000.
    pub pages: usize,
    /// The event time of the first visit, ms since the epoch. Default: 1 700 000 000 000.
    pub start_ms: i64,
    /// The average number of events per second of event time (the simulated rate).
    /// Default: 50.
    pub events_per_second: f64,
    /// The share of users that are bots. Default: 0.01.
    pub bot_share: f64,
    /// The probability that a (human) page view leads to a click on the page; one in five
    /// of those leads to a second click, so clicks per view are about 1.2 times this.
    /// Default: 0.08.
    pub click_probability: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            users: 10_000,
            pages: 1_000,
            start_ms: 1_700_000_000_000,
            events_per_second: 50.0,
            bot_share: 0.01,
            click_probability: 0.08,
        }
    }
}

/// The probability that a human visit goes on after a view (visits have 1 / (1 - p) views
/// on average).
const NEXT_VIEW_PROBABILITY: f64 = 0.83;
/// The mean pause between two views of a visit, ms (exponential, clamped).
const MEAN_VIEW_GAP_MS: f64 = 40_000.0;
/// The longest pause between two views of a visit: well below the 30-minute session gap,
/// so a visit is one session.
const MAX_VIEW_GAP_MS: i64 = 10 * 60 * 1000;
/// Bot bursts: clicks per visit and the pause between clicks.
const BOT_CLICKS: (u64, u64) = (22, 45);
const BOT_CLICK_GAP_MS: (u64, u64) = (40, 150);

const REFERRERS: [(&str, f64); 4] = [
    ("search", 0.40),
    ("direct", 0.25),
    ("social", 0.20),
    ("email", 0.15),
];
const DEVICES: [(&str, f64); 3] = [("mobile", 0.55), ("desktop", 0.35), ("tablet", 0.10)];
const ELEMENTS: [&str; 6] = [
    "buy-button",
    "add-to-cart",
    "related-link",
    "banner",
    "video",
    "share",
];

/// Users' countries and their shares.
const COUNTRIES: [(&str, f64); 9] = [
    ("us", 0.30),
    ("in", 0.15),
    ("de", 0.10),
    ("gb", 0.10),
    ("br", 0.10),
    ("fr", 0.08),
    ("jp", 0.07),
    ("ng", 0.05),
    ("au", 0.05),
];
/// Page categories (each page gets one at random).
const CATEGORIES: [&str; 8] = [
    "news", "sports", "tech", "shop", "travel", "food", "music", "games",
];
/// Signup cohorts: the months up to this many before the start.
const COHORT_MONTHS: u64 = 36;
/// The probability that a visit starts with a profile update (the user moved).
const PROFILE_UPDATE_PROBABILITY: f64 = 0.01;
/// Mixed into the seed for the reference data's own random stream.
const PROFILE_SEED: u64 = 0x7072_6f66_696c_6573;

/// The year and month (1 to 12) of `ms` since the epoch, UTC (Howard Hinnant's
/// `civil_from_days`).
fn year_month(ms: i64) -> (i64, i64) {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The cohort (`YYYY-MM`) `months_back` months before the month of `ms`.
fn cohort(ms: i64, months_back: u64) -> String {
    let (year, month) = year_month(ms);
    let index = year * 12 + month - 1 - i64::try_from(months_back).unwrap_or(0);
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

/// Picks from `(item, weight)` pairs whose weights add up to 1.
fn weighted(rng: &mut Rng, items: &[(&'static str, f64)]) -> &'static str {
    let mut u = rng.next_f64();
    for (item, w) in items {
        if u < *w {
            return item;
        }
        u -= w;
    }
    items.last().map_or("", |(item, _)| item)
}

/// An exponentially distributed number with the given mean.
fn exponential(rng: &mut Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.next_f64()).ln()
}

/// A uniform integer in `[lo, hi]`.
fn between(rng: &mut Rng, (lo, hi): (u64, u64)) -> u64 {
    lo + rng.below(hi.saturating_sub(lo) + 1)
}

#[derive(Debug, Clone)]
struct User {
    device: &'static str,
    bot: bool,
    /// The end of the user's visit in progress (a new visit starts after it).
    busy_until: i64,
    /// The country of the profile written last.
    country: &'static str,
    cohort: String,
}

/// What the generator schedules: an event, or a profile update that takes effect when it
/// is emitted.
#[derive(Debug, Clone)]
enum Scheduled {
    Activity(ActivityEvent),
    Profile {
        user: usize,
        country: &'static str,
        profile: UserProfile,
    },
}

/// A scheduled record, ordered by time and then by scheduling order.
#[derive(Debug, Clone)]
struct Pending {
    ts: i64,
    seq: u64,
    event: Scheduled,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

/// An endless, seeded, event-time-ordered stream of page views and clicks (see the
/// [module docs](self)); take as many as you need. As an iterator it yields the views and
/// clicks only; [`records`](Self::records) adds the profile updates.
#[derive(Debug, Clone)]
pub struct ActivityGenerator {
    rng: Rng,
    /// The reference data's own stream: profiles, categories, updates.
    profiles: Rng,
    /// Each page's category.
    categories: Vec<&'static str>,
    /// The time of the catalogue: just before the first event.
    catalogue_ts: i64,
    pages: Zipf,
    user_skew: Zipf,
    users: Vec<User>,
    click_probability: f64,
    /// Mean time between visit starts, ms.
    mean_visit_gap_ms: f64,
    /// The start of the next visit; every event scheduled later comes from later visits.
    next_visit: f64,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

impl ActivityGenerator {
    /// A generator with these settings.
    pub fn new(config: GeneratorConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let mut users: Vec<User> = (0..config.users.max(1))
            .map(|_| User {
                device: weighted(&mut rng, &DEVICES),
                bot: rng.next_f64() < config.bot_share,
                busy_until: i64::MIN,
                country: "",
                cohort: String::new(),
            })
            .collect();
        // Reference data from its own stream: the events stay those of the seed.
        let mut profiles = Rng::new(config.seed ^ PROFILE_SEED);
        for u in &mut users {
            u.country = weighted(&mut profiles, &COUNTRIES);
            u.cohort = cohort(config.start_ms, profiles.below(COHORT_MONTHS));
        }
        let categories: Vec<&'static str> = (0..config.pages.max(1))
            .map(|_| CATEGORIES[profiles.below(CATEGORIES.len() as u64) as usize])
            .collect();
        // Events per visit on average, to turn events per second into visits per second.
        let p = config.click_probability.clamp(0.0, 1.0);
        let human = (1.0 + p * 1.2) / (1.0 - NEXT_VIEW_PROBABILITY);
        let bot = 1.0 + (BOT_CLICKS.0 + BOT_CLICKS.1) as f64 / 2.0;
        let share = config.bot_share.clamp(0.0, 1.0);
        let per_visit = (1.0 - share) * human + share * bot;
        let visits_per_ms = config.events_per_second.max(1e-9) / 1000.0 / per_visit;
        let user_count = users.len();
        Self {
            rng,
            profiles,
            categories,
            catalogue_ts: config.start_ms.saturating_sub(1),
            pages: Zipf::new(config.pages.max(1), 1.1),
            user_skew: Zipf::new(user_count, 0.6),
            users,
            click_probability: p,
            mean_visit_gap_ms: 1.0 / visits_per_ms,
            next_visit: config.start_ms as f64,
            pending: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// A generator whose visits are already under way at `config.start_ms`: the simulation
    /// starts `warm_up` earlier and the events before `config.start_ms` are dropped, so the
    /// first event is at `start_ms` or later and the rate is steady from the start (a
    /// simulation started cold spreads its first events over minutes while visits ramp up).
    /// The activity binary uses it with 10 minutes of warm-up.
    ///
    /// Nothing depends on the wall clock: the same settings and `warm_up` give the same
    /// events, which is what the binary's deterministic mode (`--start-time`) relies on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_examples::activity::generator::{ActivityGenerator, GeneratorConfig};
    /// let config = GeneratorConfig { seed: 7, start_ms: 1_700_000_000_000, ..GeneratorConfig::default() };
    /// let warm_up = Duration::from_secs(600);
    /// let a: Vec<_> = ActivityGenerator::under_way(config.clone(), warm_up).take(100).collect();
    /// let b: Vec<_> = ActivityGenerator::under_way(config, warm_up).take(100).collect();
    /// assert_eq!(a, b);
    /// assert!(a[0].ts() >= 1_700_000_000_000);
    /// ```
    pub fn under_way(config: GeneratorConfig, warm_up: Duration) -> Self {
        let start_ms = config.start_ms;
        let warm_up_ms = i64::try_from(warm_up.as_millis()).unwrap_or(i64::MAX);
        let mut generator = Self::new(GeneratorConfig {
            start_ms: start_ms.saturating_sub(warm_up_ms),
            ..config
        });
        generator.skip_before(start_ms);
        generator.catalogue_ts = start_ms.saturating_sub(1);
        generator
    }

    /// The reference data as it stands before the first event (profile updates skipped by
    /// [`under_way`](Self::under_way) included): every page's category (`pages` topic),
    /// then every user's profile (`users` topic), all at the time just before the first
    /// event. Write them before the events, so that every view finds its user and page.
    ///
    /// ```
    /// use streams_examples::activity::InputRecord;
    /// use streams_examples::activity::generator::{ActivityGenerator, GeneratorConfig};
    /// let g = ActivityGenerator::new(GeneratorConfig { users: 3, pages: 2, ..GeneratorConfig::default() });
    /// let catalogue = g.catalogue();
    /// assert_eq!(catalogue.len(), 5);
    /// assert!(matches!(&catalogue[0], InputRecord::Page(p) if p.page == "/p/0"));
    /// assert!(matches!(&catalogue[2], InputRecord::User(u) if u.user_id == "user-0"));
    /// ```
    pub fn catalogue(&self) -> Vec<InputRecord> {
        let ts = self.catalogue_ts;
        let pages = self.categories.iter().enumerate().map(|(i, category)| {
            InputRecord::Page(PageInfo {
                page: format!("/p/{i}"),
                category: (*category).to_string(),
                ts,
            })
        });
        let users = self.users.iter().enumerate().map(|(i, u)| {
            InputRecord::User(UserProfile {
                user_id: format!("user-{i}"),
                country: u.country.to_string(),
                cohort: u.cohort.clone(),
                ts,
            })
        });
        pages.chain(users).collect()
    }

    /// The views and clicks together with the profile updates, in event-time order.
    ///
    /// ```
    /// use streams_examples::activity::generator::{ActivityGenerator, GeneratorConfig};
    /// let config = GeneratorConfig { seed: 7, ..GeneratorConfig::default() };
    /// let events: Vec<_> = ActivityGenerator::new(config.clone()).take(5_000).collect();
    /// let records: Vec<_> = ActivityGenerator::new(config).records().take(5_100).collect();
    /// let activity: Vec<_> = records.iter().filter_map(|r| r.activity()).take(5_000).collect();
    /// assert_eq!(activity, events); // the same views and clicks
    /// assert!(records.iter().any(|r| !r.is_activity())); // and a few profile updates
    /// ```
    pub fn records(self) -> Records {
        Records(self)
    }

    /// The next view, click or profile update.
    pub fn next_record(&mut self) -> Option<InputRecord> {
        loop {
            let next_visit = self.next_visit as i64;
            match self.pending.peek() {
                // Later visits start at `next_visit` or after: nothing can come before this.
                Some(Reverse(p)) if p.ts <= next_visit => {
                    let Reverse(p) = self.pending.pop()?;
                    return Some(self.emit(p.event));
                }
                _ => {
                    self.start_visit(next_visit);
                    self.next_visit += exponential(&mut self.rng, self.mean_visit_gap_ms);
                }
            }
        }
    }

    /// A scheduled record as it is emitted; a profile update takes effect now.
    fn emit(&mut self, event: Scheduled) -> InputRecord {
        match event {
            Scheduled::Activity(e) => e.into(),
            Scheduled::Profile {
                user,
                country,
                profile,
            } => {
                if let Some(u) = self.users.get_mut(user) {
                    u.country = country;
                }
                InputRecord::User(profile)
            }
        }
    }

    /// Drops the records before `ts` (profile updates take effect): afterwards the next
    /// record is at `ts` or later.
    fn skip_before(&mut self, ts: i64) {
        loop {
            let next_visit = self.next_visit as i64;
            match self.pending.peek() {
                // The next record (as in `next_record`): kept if it is at `ts` or later.
                Some(Reverse(p)) if p.ts <= next_visit => {
                    if p.ts >= ts {
                        return;
                    }
                    if let Some(Reverse(p)) = self.pending.pop() {
                        self.emit(p.event);
                    }
                }
                _ => {
                    self.start_visit(next_visit);
                    self.next_visit += exponential(&mut self.rng, self.mean_visit_gap_ms);
                }
            }
        }
    }

    fn schedule(&mut self, event: ActivityEvent) {
        self.push(event.ts(), Scheduled::Activity(event));
    }

    fn push(&mut self, ts: i64, event: Scheduled) {
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            ts,
            seq: self.seq,
            event,
        }));
    }

    /// Schedules a view of `page` by `user_id` at `ts`.
    fn view(&mut self, user_id: &str, page: &str, referrer: &str, device: &str, ts: i64) {
        self.schedule(ActivityEvent::PageView(PageView {
            user_id: user_id.into(),
            page: page.into(),
            referrer: referrer.into(),
            device: device.into(),
            ts,
        }));
    }

    /// Schedules a click of `user_id` on a random element of `page` at `ts`.
    fn click(&mut self, user_id: &str, page: &str, ts: i64) {
        let element = ELEMENTS[self.rng.below(ELEMENTS.len() as u64) as usize];
        self.schedule(ActivityEvent::Click(Click {
            user_id: user_id.into(),
            page: page.into(),
            element: element.into(),
            ts,
        }));
    }

    fn page(&mut self) -> String {
        format!("/p/{}", self.pages.sample(&mut self.rng))
    }

    /// Schedules every event of a visit starting at `start`.
    fn start_visit(&mut self, start: i64) {
        // A user without a visit in progress (a few tries, else visits overlap).
        let mut u = self.user_skew.sample(&mut self.rng);
        for _ in 0..4 {
            if self.users[u].busy_until < start {
                break;
            }
            u = self.user_skew.sample(&mut self.rng);
        }
        let user_id = format!("user-{u}");
        let User { device, bot, .. } = self.users[u];
        let mut t = start;
        // Now and then a user moved since the last visit: the profile update comes first
        // (at the visit's start, the visit a millisecond later, so that no view of the user
        // shares the update's time). Only between visits: no event of the user is later.
        if self.users[u].busy_until < start && self.profiles.next_f64() < PROFILE_UPDATE_PROBABILITY
        {
            let old = self.users[u].country;
            let mut country = weighted(&mut self.profiles, &COUNTRIES);
            if country == old {
                let i = COUNTRIES.iter().position(|(c, _)| *c == old).unwrap_or(0);
                country = COUNTRIES[(i + 1) % COUNTRIES.len()].0;
            }
            let profile = UserProfile {
                user_id: user_id.clone(),
                country: country.to_string(),
                cohort: self.users[u].cohort.clone(),
                ts: start,
            };
            self.push(
                start,
                Scheduled::Profile {
                    user: u,
                    country,
                    profile,
                },
            );
            t = start + 1;
        }
        if bot {
            let page = self.page();
            self.view(&user_id, &page, "direct", device, t);
            for _ in 0..between(&mut self.rng, BOT_CLICKS) {
                t += between(&mut self.rng, BOT_CLICK_GAP_MS) as i64;
                self.click(&user_id, &page, t);
            }
        } else {
            let mut referrer = weighted(&mut self.rng, &REFERRERS);
            loop {
                let page = self.page();
                self.view(&user_id, &page, referrer, device, t);
                if self.rng.next_f64() < self.click_probability {
                    let mut c = t + between(&mut self.rng, (500, 20_000)) as i64;
                    let clicks = if self.rng.below(5) == 0 { 2 } else { 1 };
                    for _ in 0..clicks {
                        self.click(&user_id, &page, c);
                        c += between(&mut self.rng, (500, 10_000)) as i64;
                    }
                    self.users[u].busy_until = self.users[u].busy_until.max(c);
                }
                if self.rng.next_f64() >= NEXT_VIEW_PROBABILITY {
                    break;
                }
                let gap = exponential(&mut self.rng, MEAN_VIEW_GAP_MS) as i64;
                t += gap.clamp(1_000, MAX_VIEW_GAP_MS);
                referrer = "internal";
            }
        }
        self.users[u].busy_until = self.users[u].busy_until.max(t);
    }
}

impl Iterator for ActivityGenerator {
    type Item = ActivityEvent;

    /// The next view or click (profile updates take effect, but are not yielded).
    fn next(&mut self) -> Option<ActivityEvent> {
        loop {
            match self.next_record()? {
                InputRecord::PageView(v) => return Some(ActivityEvent::PageView(v)),
                InputRecord::Click(c) => return Some(ActivityEvent::Click(c)),
                InputRecord::User(_) | InputRecord::Page(_) => {}
            }
        }
    }
}

/// The views, clicks and profile updates of a generator, in event-time order; see
/// [`ActivityGenerator::records`].
#[derive(Debug, Clone)]
pub struct Records(ActivityGenerator);

impl Iterator for Records {
    type Item = InputRecord;

    fn next(&mut self) -> Option<InputRecord> {
        self.0.next_record()
    }
}

/// Paces events to a wall-clock rate, for real-time mode.
///
/// The `n`th event (from 0) is due `n / events_per_second` after the first; [`acquire`]
/// sleeps until the next event is due. After a stall of more than a second the schedule
/// starts afresh rather than bursting to catch up.
///
/// [`acquire`]: Self::acquire
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_second: f64,
    start: Option<Instant>,
    sent: u64,
}

impl RateLimiter {
    /// A limiter to `events_per_second`; zero, negative or NaN means no limit.
    pub fn new(events_per_second: f64) -> Self {
        Self {
            per_second: events_per_second,
            start: None,
            sent: 0,
        }
    }

    /// Counts one event at `now` and returns how long to wait before sending it.
    pub fn delay_at(&mut self, now: Instant) -> Duration {
        if self.per_second.is_nan() || self.per_second <= 0.0 {
            return Duration::ZERO;
        }
        let start = *self.start.get_or_insert(now);
        let due = start + Duration::from_secs_f64(self.sent as f64 / self.per_second);
        if now.saturating_duration_since(due) > Duration::from_secs(1) {
            // Far behind: start a new schedule now instead of bursting.
            self.start = Some(now);
            self.sent = 1;
            return Duration::ZERO;
        }
        self.sent += 1;
        due.saturating_duration_since(now)
    }

    /// Waits (sleeping) until the next event may be sent.
    pub fn acquire(&mut self) {
        let delay = self.delay_at(Instant::now());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

/// An iterator that yields its inner iterator's items at a wall-clock rate; see [`paced`].
#[derive(Debug, Clone)]
pub struct Paced<I> {
    inner: I,
    limiter: RateLimiter,
}

impl<I: Iterator> Iterator for Paced<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.limiter.acquire();
        Some(item)
    }
}

/// Yields `events` at `events_per_second` of wall-clock time (real-time mode).
pub fn paced<I: IntoIterator>(events: I, events_per_second: f64) -> Paced<I::IntoIter> {
    Paced {
        inner: events.into_iter(),
        limiter: RateLimiter::new(events_per_second),
    }
}

/// Writes `records` (views and clicks, or any input records) to `path` (created or
/// truncated) as JSON lines, one record per line with its `type` tag; returns how many were
/// written.
///
/// # Errors
///
/// [`ActivityError::Io`] when the file cannot be written.
pub fn record_events<R: Into<InputRecord>>(
    path: &Path,
    records: impl IntoIterator<Item = R>,
) -> Result<usize> {
    let io = |source| ActivityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    let mut n = 0;
    for record in records {
        serde_json::to_writer(&mut out, &record.into()).map_err(ActivityError::Encode)?;
        out.write_all(b"\n").map_err(io)?;
        n += 1;
    }
    out.flush().map_err(io)?;
    Ok(n)
}

/// Replays a recording written by [`record_events`] (or by hand: one JSON input record per
/// line; blank lines are skipped), in file order.
///
/// # Errors
///
/// [`ActivityError::Io`] when the file cannot be opened; the iterator yields
/// [`ActivityError::Io`] or [`ActivityError::Parse`] for a line it cannot read.
pub fn replay_events(path: &Path) -> Result<Replay> {
    let file = File::open(path).map_err(|source| ActivityError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Replay {
        path: path.to_path_buf(),
        lines: BufReader::new(file).lines(),
        line: 0,
    })
}

/// The records of a recording; see [`replay_events`].
#[derive(Debug)]
pub struct Replay {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line: usize,
}

impl Iterator for Replay {
    type Item = Result<InputRecord>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            self.line += 1;
            let line = match line {
                Ok(l) => l,
                Err(source) => {
                    return Some(Err(ActivityError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(&line).map_err(|source| ActivityError::Parse {
                    path: self.path.clone(),
                    line: self.line,
                    source,
                }),
            );
        }
    }
}

/// The input topics in the order their records are written: reference data first, so that
/// the views that need it find it.
const INPUT_TOPICS: [&str; 4] = [PAGES_TOPIC, USERS_TOPIC, PAGE_VIEWS_TOPIC, CLICKS_TOPIC];

/// Whether an input topic holds reference data (compacted: the latest record per key).
fn is_reference(topic: &str) -> bool {
    topic == USERS_TOPIC || topic == PAGES_TOPIC
}

/// Creates the four input topics (`page_views`, `clicks`, and the compacted `users` and
/// `pages`) with `partitions` partitions on the engine, unless they exist.
///
/// # Errors
///
/// [`ActivityError::State`] when the engine refuses.
pub fn create_input_topics(engine: &LogEngine, partitions: u32) -> Result<()> {
    let existing: Vec<String> = engine.topics().into_iter().map(|(n, _)| n).collect();
    for topic in INPUT_TOPICS {
        if !existing.iter().any(|n| n == topic) {
            let config = TopicConfig::new(partitions);
            let config = if is_reference(topic) {
                config.compacted()
            } else {
                config
            };
            engine.create_topic(topic, config)?;
        }
    }
    Ok(())
}

/// The record a producer sends for an input record: key = user id (the page for a
/// catalogue entry; UTF-8), value = its JSON (without the `type` tag), timestamp = event
/// time, partition = Kafka's murmur2 partitioner over `partitions` of the record's topic.
///
/// # Errors
///
/// [`ActivityError::Encode`] when the record cannot be encoded.
pub fn outgoing_record(record: impl Into<InputRecord>, partitions: u32) -> Result<OutgoingRecord> {
    let record = record.into();
    let value = match &record {
        InputRecord::PageView(v) => serde_json::to_vec(v),
        InputRecord::Click(c) => serde_json::to_vec(c),
        InputRecord::User(u) => serde_json::to_vec(u),
        InputRecord::Page(p) => serde_json::to_vec(p),
    }
    .map_err(ActivityError::Encode)?;
    let key = record.key().as_bytes().to_vec();
    let p = partition_for_key(&key, partitions.max(1));
    Ok(OutgoingRecord {
        partition: TopicPartition::new(record.topic(), p),
        timestamp: record.ts(),
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
    })
}

/// Creates the four input topics with `partitions` partitions through a client's admin (on
/// the embedded engine or on Kafka), unless they exist (`users` and `pages` compacted).
/// Returns the partition count of the input topics as they are (an existing topic keeps
/// its count).
///
/// # Errors
///
/// [`ActivityError::Client`] when the broker refuses, or when `page_views`, `clicks` and
/// `users` exist with different partition counts (they must be co-partitioned: views and
/// clicks for sessions and alerts, views and users for the stream-table join).
pub fn ensure_input_topics(admin: &dyn Admin, partitions: u32) -> Result<u32> {
    let existing = admin.topics()?;
    let mut counts = Vec::new();
    for topic in INPUT_TOPICS {
        let count = match existing.get(topic) {
            Some(n) => *n,
            None => {
                let new = NewTopic::new(topic, partitions);
                let new = if is_reference(topic) {
                    new.compacted()
                } else {
                    new
                };
                match admin.create_topic(&new) {
                    Ok(()) | Err(ClientError::TopicExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                partitions
            }
        };
        // The global table (pages) may have any partition count.
        if topic != PAGES_TOPIC {
            counts.push((topic, count));
        }
    }
    let first = counts.first().map_or(partitions, |(_, n)| *n);
    if counts.iter().any(|(_, n)| *n != first) {
        let list: Vec<String> = counts
            .iter()
            .map(|(t, n)| format!("`{t}` has {n}"))
            .collect();
        return Err(ClientError::Broker {
            operation: "checking the input topics".into(),
            detail: format!(
                "{}: they must be co-partitioned (the same partition count)",
                list.join(", ")
            ),
        }
        .into());
    }
    Ok(first)
}

/// Appends input records to their topics as a producer would (see [`outgoing_record`]).
/// Records of one topic partition keep their order (one batch per topic partition), and
/// wherever the records switch between reference data (`users`, `pages`) and events (views,
/// clicks), everything before is appended first: a profile update is in the log after the
/// views before it and before the views after it, so that an app reading the topics
/// meanwhile takes them in that order. Returns how many were appended.
///
/// # Errors
///
/// [`ActivityError::State`] when a topic is missing or an append fails.
pub fn append_events<R: Into<InputRecord>>(
    engine: &LogEngine,
    records: impl IntoIterator<Item = R>,
    partitions: u32,
) -> Result<usize> {
    let mut batches: HashMap<(usize, u32), Vec<NewRecord>> = HashMap::new();
    let mut reference: Option<bool> = None;
    let mut n = 0;
    for record in records {
        let record = record.into();
        let is_reference = !record.is_activity();
        if reference.is_some_and(|r| r != is_reference) {
            append_batches(engine, &mut batches)?;
        }
        reference = Some(is_reference);
        let r = outgoing_record(record, partitions)?;
        let rank = INPUT_TOPICS
            .iter()
            .position(|t| *t == &*r.partition.topic)
            .unwrap_or(INPUT_TOPICS.len());
        batches
            .entry((rank, r.partition.partition))
            .or_default()
            .push(NewRecord {
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: Vec::new(),
            });
        n += 1;
    }
    append_batches(engine, &mut batches)?;
    Ok(n)
}

/// Appends and empties `batches`, per (topic rank, partition) in order.
fn append_batches(
    engine: &LogEngine,
    batches: &mut HashMap<(usize, u32), Vec<NewRecord>>,
) -> Result<()> {
    let mut keys: Vec<(usize, u32)> = batches.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        if let (Some(batch), Some(topic)) = (batches.remove(&key), INPUT_TOPICS.get(key.0)) {
            engine.append(topic, key.1, &batch)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn sample(n: usize) -> Vec<ActivityEvent> {
        ActivityGenerator::new(GeneratorConfig::default())
            .take(n)
            .collect()
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let a = sample(2_000);
        assert_eq!(a, sample(2_000));
        let c: Vec<_> = ActivityGenerator::new(GeneratorConfig {
            seed: 43,
            ..GeneratorConfig::default()
        })
        .take(2_000)
        .collect();
        assert_ne!(a, c);
    }

    /// What a deterministic run writes to the input topics: `n` events of a generator under
    /// way at `start_ms`, appended to a fresh engine as a producer would send them, read back
    /// as (topic, partition, record) in offset order.
    fn deterministic_input(
        seed: u64,
        start_ms: i64,
        n: usize,
    ) -> Vec<(&'static str, u32, streams_core::runtime::LogRecord)> {
        let config = GeneratorConfig {
            seed,
            start_ms,
            events_per_second: 20.0,
            ..GeneratorConfig::default()
        };
        let events = ActivityGenerator::under_way(config, Duration::from_secs(600)).take(n);
        let dir = tempfile::tempdir().unwrap();
        let engine = LogEngine::open(&dir.path().join("log")).unwrap();
        create_input_topics(&engine, 4).unwrap();
        assert_eq!(append_events(&engine, events, 4).unwrap(), n);
        let mut out = Vec::new();
        for topic in [PAGE_VIEWS_TOPIC, CLICKS_TOPIC] {
            for p in 0..4 {
                for r in engine.read(topic, p, 0, usize::MAX).unwrap() {
                    out.push((topic, p, r));
                }
            }
        }
        out
    }

    #[test]
    fn the_same_seed_and_start_give_the_same_input_bytes() {
        let start = 1_700_000_000_000;
        let a = deterministic_input(5, start, 3_000);
        assert_eq!(a.len(), 3_000);
        assert_eq!(a, deterministic_input(5, start, 3_000));
        assert_ne!(a, deterministic_input(6, start, 3_000));
        let later = deterministic_input(5, start + 3_600_000, 3_000);
        assert_ne!(a, later);
        // Event time starts at the start time, with visits already under way (views with
        // the referrer `internal` continue visits that began before it).
        let first = a.iter().map(|(_, _, r)| r.timestamp).min().unwrap();
        assert!((start..start + 5_000).contains(&first), "{first}");
        let continued = a.iter().take(100).any(|(_, _, r)| {
            String::from_utf8_lossy(r.value.as_deref().unwrap()).contains("\"internal\"")
        });
        assert!(continued);
    }

    #[test]
    fn under_way_is_a_started_generator_without_its_first_events() {
        let config = GeneratorConfig {
            seed: 9,
            start_ms: 1_700_000_600_000,
            ..GeneratorConfig::default()
        };
        let warm_up = Duration::from_secs(600);
        let skipped: Vec<_> = ActivityGenerator::new(GeneratorConfig {
            start_ms: config.start_ms - 600_000,
            ..config.clone()
        })
        .skip_while(|e| e.ts() < config.start_ms)
        .take(2_000)
        .collect();
        let under_way: Vec<_> = ActivityGenerator::under_way(config, warm_up)
            .take(2_000)
            .collect();
        assert_eq!(under_way, skipped);
    }

    #[test]
    fn events_are_time_ordered_at_about_the_configured_rate() {
        let events = sample(50_000);
        assert!(events.windows(2).all(|w| w[0].ts() <= w[1].ts()));
        let first = events.first().map(ActivityEvent::ts).unwrap();
        let last = events.last().map(ActivityEvent::ts).unwrap();
        let rate = events.len() as f64 / ((last - first) as f64 / 1000.0);
        assert!(
            (35.0..65.0).contains(&rate),
            "{rate} events/s, configured 50"
        );
    }

    #[test]
    fn pages_are_skewed_and_click_through_is_realistic() {
        let events = sample(50_000);
        let mut views: HashMap<&str, usize> = HashMap::new();
        let mut clicks_by_human = 0;
        let mut views_total = 0;
        let mut clicks_by_user: HashMap<&str, Vec<i64>> = HashMap::new();
        for e in &events {
            match e {
                ActivityEvent::PageView(v) => {
                    *views.entry(&v.page).or_default() += 1;
                    views_total += 1;
                }
                ActivityEvent::Click(c) => clicks_by_user.entry(&c.user_id).or_default().push(c.ts),
            }
        }
        // Bots: more than 20 clicks within 10 seconds.
        let is_bot = |ts: &[i64]| ts.windows(21).any(|w| w[20] - w[0] < 10_000);
        let bots: HashSet<&str> = clicks_by_user
            .iter()
            .filter(|(_, ts)| is_bot(ts))
            .map(|(u, _)| *u)
            .collect();
        for (u, ts) in &clicks_by_user {
            if !bots.contains(u) {
                clicks_by_human += ts.len();
            }
        }
        let ctr = clicks_by_human as f64 / views_total as f64;
        assert!((0.05..0.15).contains(&ctr), "human click-through {ctr}");
        assert!(!bots.is_empty());
        let users: HashSet<&str> = events.iter().map(ActivityEvent::user_id).collect();
        let share = bots.len() as f64 / users.len() as f64;
        assert!(share < 0.05, "bot share {share}");
        let top = views.get("/p/0").copied().unwrap_or(0);
        let mid = views.get("/p/500").copied().unwrap_or(0);
        assert!(top > 20 * (mid + 1), "top {top} mid {mid}");
    }

    #[test]
    fn users_come_back_within_and_after_the_session_gap() {
        // About three hours of event time.
        let events: Vec<_> = ActivityGenerator::new(GeneratorConfig {
            events_per_second: 5.0,
            users: 2_000,
            ..GeneratorConfig::default()
        })
        .take(50_000)
        .collect();
        let mut last: HashMap<&str, i64> = HashMap::new();
        let (mut short, mut long) = (0, 0);
        for e in &events {
            if let Some(prev) = last.insert(e.user_id(), e.ts()) {
                let pause = e.ts() - prev;
                if pause > 30 * 60 * 1000 {
                    long += 1;
                } else if pause > 5 * 60 * 1000 {
                    short += 1;
                }
            }
        }
        assert!(
            short > 100 && long > 100,
            "pauses 5-30 min: {short}, > 30 min: {long}"
        );
    }

    #[test]
    fn cohorts_are_months_before_the_start() {
        assert_eq!(year_month(1_700_000_000_000), (2023, 11)); // 2023-11-14
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(951_782_400_000), (2000, 2)); // 2000-02-29
        assert_eq!(year_month(-1), (1969, 12));
        assert_eq!(cohort(1_700_000_000_000, 0), "2023-11");
        assert_eq!(cohort(1_700_000_000_000, 11), "2022-12");
        assert_eq!(cohort(1_700_000_000_000, 35), "2020-12");
    }

    #[test]
    fn the_catalogue_and_profile_updates_are_seeded_and_precede_what_needs_them() {
        let config = GeneratorConfig {
            seed: 5,
            users: 5_000,
            pages: 50,
            events_per_second: 10.0,
            ..GeneratorConfig::default()
        };
        let g = ActivityGenerator::under_way(config.clone(), Duration::from_secs(600));
        let catalogue = g.catalogue();
        assert_eq!(
            catalogue,
            ActivityGenerator::under_way(config.clone(), Duration::from_secs(600)).catalogue()
        );
        assert_eq!(catalogue.len(), 5_050);
        assert!(catalogue.iter().all(|r| r.ts() == config.start_ms - 1));
        let categories: HashSet<String> = catalogue
            .iter()
            .filter_map(|r| match r {
                InputRecord::Page(p) => Some(p.category.clone()),
                _ => None,
            })
            .collect();
        assert!(categories.len() >= 5, "{categories:?}");
        // Every record at or after the catalogue, in time order; every update changes the
        // user's country and is the user's only record at its time.
        let records: Vec<InputRecord> = g.records().take(30_000).collect();
        assert!(records.windows(2).all(|w| w[0].ts() <= w[1].ts()));
        assert!(records[0].ts() >= config.start_ms);
        let mut country: HashMap<String, String> = HashMap::new();
        for r in &catalogue {
            if let InputRecord::User(u) = r {
                country.insert(u.user_id.clone(), u.country.clone());
            }
        }
        let mut updates = 0;
        for r in &records {
            if let InputRecord::User(u) = r {
                updates += 1;
                let old = country.insert(u.user_id.clone(), u.country.clone());
                assert_ne!(old.as_deref(), Some(u.country.as_str()), "{u:?}");
                assert!(
                    !records
                        .iter()
                        .any(|o| o.is_activity() && o.key() == u.user_id && o.ts() == u.ts),
                    "{u:?}"
                );
            }
        }
        assert!((10..200).contains(&updates), "{updates} updates");
    }

    #[test]
    fn the_rate_limiter_spaces_events_and_does_not_burst_after_a_stall() {
        let mut limiter = RateLimiter::new(100.0);
        let t0 = Instant::now();
        assert_eq!(limiter.delay_at(t0), Duration::ZERO);
        assert_eq!(limiter.delay_at(t0), Duration::from_millis(10));
        assert_eq!(limiter.delay_at(t0), Duration::from_millis(20));
        // Five seconds late: a new schedule starts.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(limiter.delay_at(later), Duration::ZERO);
        assert_eq!(limiter.delay_at(later), Duration::from_millis(10));
        let mut unlimited = RateLimiter::new(0.0);
        assert_eq!(unlimited.delay_at(t0), Duration::ZERO);
        assert_eq!(unlimited.delay_at(t0), Duration::ZERO);
    }

    #[test]
    fn recordings_replay_the_same_events_and_report_bad_lines() {
        let dir = std::env::temp_dir().join(format!("activity-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let events = sample(500);
        assert_eq!(record_events(&path, events.clone()).unwrap(), 500);
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.starts_with("{\"type\":\"page_view\""), "{first:.60}");
        let back: Vec<InputRecord> = replay_events(&path)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let events: Vec<InputRecord> = events.into_iter().map(InputRecord::from).collect();
        assert_eq!(back, events);
        // Reference data and updates round-trip too.
        let generator = ActivityGenerator::new(GeneratorConfig::default());
        let mut records = generator.catalogue();
        records.extend(generator.records().take(20_000));
        assert!(records.iter().any(|r| matches!(r, InputRecord::User(_))));
        record_events(&path, records.clone()).unwrap();
        let back: Vec<InputRecord> = replay_events(&path)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(back, records);

        std::fs::write(
            &path,
            format!("{}\n\nnot json\n", first.lines().next().unwrap()),
        )
        .unwrap();
        let got: Vec<_> = replay_events(&path).unwrap().collect();
        assert!(got[0].is_ok());
        assert!(
            matches!(&got[1], Err(ActivityError::Parse { line: 3, .. })),
            "{:?}",
            got[1]
        );
        assert!(matches!(
            replay_events(&dir.join("missing.jsonl")),
            Err(ActivityError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
