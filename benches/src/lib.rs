//! Shared parts of the benchmarks: the standard workloads' input (docs/BENCHMARKS.md)
//! and topologies, and the statistics of the reports.

#![allow(missing_docs)]

use serde::{Deserialize, Serialize};
use streams_core::StreamsSerde;
use streams_core::prelude::*;

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
