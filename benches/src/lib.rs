//! Shared parts of the benchmarks: the standard workloads' input (docs/BENCHMARKS.md)
//! and topologies, and the statistics of the reports.

#![allow(missing_docs)]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use streams_core::StreamsSerde;
use streams_core::prelude::*;
use streams_core::window::{SessionWindows, TimeWindows};

/// A boxed error, for benchmark mains.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The input topic of the standard workloads.
pub const INPUT: &str = "page_views";
/// Its partitions.
pub const PARTITIONS: u32 = 4;
/// The event time of the first record.
pub const EPOCH_MS: i64 = 1_700_000_000_000;

/// The standard workloads' page view (the examples' type: JSON, keyed by user id).
pub use streams_examples::PageView;

/// The W* page views: users uniform over 100,000, pages Zipf(1.1) over 10,000, event time
/// +1 ms per record with 1 % of records up to 1 s late, seeded.
pub fn page_views(seed: u64) -> streams_examples::PageViewGenerator {
    streams_examples::PageViewGenerator::new(seed, 100_000, 10_000, EPOCH_MS)
}

/// W1's projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct PageTs {
    pub page: String,
    pub ts: i64,
}

/// Reads a count from the environment (`_` separators allowed), else `default`.
pub fn env_usize(name: &str, default: usize) -> BoxResult<usize> {
    match std::env::var(name) {
        Ok(v) => Ok(v.replace('_', "").parse()?),
        Err(_) => Ok(default),
    }
}

/// The load average (1, 5, 15 minutes), for reports.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// W1 stateless: parse JSON -> filter referrer != "bot" -> map_values (page, ts) -> `output`.
pub fn w1(output: &str) -> BoxResult<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, PageView>(INPUT)
        .filter(|_, v| v.referrer != "bot")
        .map_values(|v| PageTs {
            page: v.page,
            ts: v.ts,
        })
        .to(output);
    Ok(builder.build()?)
}

/// W2 count: group by page (repartition) -> count -> `output`.
pub fn w2(output: &str) -> BoxResult<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, PageView>(INPUT)
        .group_by(|_, v: &PageView| v.page.clone())
        .count()
        .to_stream()
        .to(output);
    Ok(builder.build()?)
}

/// The page views grouped by user (their key: no repartition), as W3 and W5 start.
fn by_user(builder: &StreamsBuilder) -> KGroupedStream<String, PageView> {
    builder.stream::<String, PageView>(INPUT).group_by_key()
}

/// W3 windowed: group by key (the user: no repartition) -> 1-minute tumbling windows,
/// grace 10 s -> count -> `output`.
pub fn w3(output: &str) -> BoxResult<Topology> {
    let builder = StreamsBuilder::new();
    let windows = TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10));
    by_user(&builder)
        .windowed_by(windows)
        .count()
        .to_stream()
        .to(output);
    Ok(builder.build()?)
}

/// W5 sessions: per-user sessions (30-minute inactivity gap, grace 1 minute) counted ->
/// `output`.
pub fn w5(output: &str) -> BoxResult<Topology> {
    let builder = StreamsBuilder::new();
    let gap = Duration::from_secs(30 * 60);
    by_user(&builder)
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            gap,
            Duration::from_secs(60),
        ))
        .count()
        .to_stream()
        .to(output);
    Ok(builder.build()?)
}

/// (median, min, max).
pub fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// A rate as `1.23 M` or `456 k`.
pub fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else {
        format!("{:.0} k", x / 1e3)
    }
}

/// W6's user: country and signup cohort (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct User {
    pub country: String,
    pub cohort: String,
}

/// W6's and W7's joined record: the view's page and time with the partner's field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct Enriched {
    pub page: String,
    pub ts: i64,
    pub with: Option<String>,
}

/// W7's click: a user clicking on a page (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct Click {
    pub user_id: String,
    pub page: String,
    pub ts: i64,
}

/// W6's users topic.
pub const USERS: &str = "users";
/// W7's clicks topic.
pub const CLICKS: &str = "clicks";

/// The W6 users: `user-<n>` for n below 100,000, with one of 8 countries and 12 cohorts.
pub fn users() -> impl Iterator<Item = (String, User)> {
    const COUNTRIES: [&str; 8] = ["fr", "de", "us", "br", "in", "jp", "ng", "au"];
    (0..100_000u32).map(|n| {
        (
            format!("user-{n}"),
            User {
                country: COUNTRIES[n as usize % COUNTRIES.len()].to_string(),
                cohort: format!("2026-{:02}", n % 12 + 1),
            },
        )
    })
}

/// The W7 clicks for `views`: about one view in five gets a click on the same page by the
/// same user, 0-5 minutes later (seeded).
pub fn clicks(views: &[PageView], seed: u64) -> Vec<Click> {
    let mut rng = streams_examples::Rng::new(seed);
    let mut out = Vec::new();
    for v in views {
        if rng.below(5) == 0 {
            out.push(Click {
                user_id: v.user_id.clone(),
                page: v.page.clone(),
                ts: v.ts + rng.below(300_001) as i64,
            });
        }
    }
    out
}

/// W6 enrichment: page views left-joined with the users table -> `output`.
pub fn w6(output: &str) -> BoxResult<Topology> {
    let builder = StreamsBuilder::new();
    let users = builder.table::<String, User>(USERS);
    builder
        .stream::<String, PageView>(INPUT)
        .left_join_table(&users, |v, u| Enriched {
            page: v.page.clone(),
            ts: v.ts,
            with: u.map(|u| u.country.clone()),
        })
        .to(output);
    Ok(builder.build()?)
}

/// W7 click attribution: page views left-joined with clicks on (user, page) within 30
/// minutes, grace 1 minute -> `output`.
pub fn w7(output: &str) -> BoxResult<Topology> {
    use std::time::Duration;
    let builder = StreamsBuilder::new();
    let views = builder
        .stream::<String, PageView>(INPUT)
        .select_key(|_, v| format!("{}|{}", v.user_id, v.page));
    let clicks = builder
        .stream::<String, Click>(CLICKS)
        .select_key(|_, c| format!("{}|{}", c.user_id, c.page));
    views
        .left_join(
            &clicks,
            |v, c| Enriched {
                page: v.page.clone(),
                ts: v.ts,
                with: c.map(|c| c.ts.to_string()),
            },
            JoinWindows::of_time_difference_and_grace(
                Duration::from_secs(1800),
                Duration::from_secs(60),
            ),
        )
        .to(output);
    Ok(builder.build()?)
}

/// The foreign-key workload's pages topic.
pub const PAGES: &str = "pages";

/// The foreign-key workload's pages: `/p/<n>` for n below 10,000, with one of 12 categories
/// (JSON string values).
pub fn pages() -> impl Iterator<Item = (String, String)> {
    (0..10_000u32).map(|n| (format!("/p/{n}"), format!("category-{}", n % 12)))
}

/// Foreign-key join: page views read as a table of each user's latest view (100,000 keys,
/// every record an update) joined by page with the pages table -> `output`.
pub fn wfk(output: &str) -> BoxResult<Topology> {
    let builder = StreamsBuilder::new();
    let pages = builder.table::<String, String>(PAGES);
    builder
        .table::<String, PageView>(INPUT)
        .join_on_foreign_key(
            &pages,
            |v| v.page.clone(),
            |v, category| Enriched {
                page: v.page.clone(),
                ts: v.ts,
                with: Some(category.clone()),
            },
        )
        .to_stream()
        .to(output);
    Ok(builder.build()?)
}

/// The allocator of the bench binaries, for reports: glibc's (the system allocator, under
/// a counting wrapper), or mimalloc with `--features mimalloc` (not counted: the counts
/// do not depend on the allocator).
pub const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "glibc malloc"
};

/// Rust allocations (`alloc` + `realloc` calls) so far, when the bench's global allocator is
/// the counting one (`&stats_alloc::INSTRUMENTED_SYSTEM`); RocksDB's C++ allocations do
/// not go through it.
pub fn allocations(alloc: &stats_alloc::StatsAlloc<std::alloc::System>) -> u64 {
    let s = alloc.stats();
    (s.allocations + s.reallocations) as u64
}
