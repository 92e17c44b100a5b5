//! Shared parts of the benchmarks: the standard workloads' input (shared/bench/workloads.md)
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

// The standard workload's input (a copy of examples/src/lib.rs's generator: this crate
// does not depend on the examples crate).

/// One page view, keyed by user id on the `page_views` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct PageView {
    pub user_id: String,
    pub page: String,
    pub referrer: String,
    pub ts: i64,
}

/// W1's projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
pub struct PageTs {
    pub page: String,
    pub ts: i64,
}

/// SplitMix64, as in examples/src/lib.rs.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Zipf-like ranks (probability proportional to 1 / (rank + 1)^s).
#[derive(Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for i in 0..n {
            total += 1.0 / ((i + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.cdf
            .partition_point(|&c| c < u)
            .min(self.cdf.len().saturating_sub(1))
    }
}

pub const REFERRERS: [&str; 5] = ["search", "social", "direct", "email", "bot"];

/// The W* page views: users uniform over 100,000, pages Zipf(1.1) over 10,000, event time
/// +1 ms per record with 1 % of records up to 1 s late. Same sequence as the examples'
/// `PageViewGenerator::new(seed, 100_000, 10_000, EPOCH_MS)`.
#[derive(Debug)]
pub struct PageViews {
    rng: Rng,
    zipf: Zipf,
    time: i64,
}

impl PageViews {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            zipf: Zipf::new(10_000, 1.1),
            time: EPOCH_MS,
        }
    }
}

impl Iterator for PageViews {
    type Item = PageView;
    fn next(&mut self) -> Option<PageView> {
        self.time += 1;
        let jitter = if self.rng.below(100) == 0 {
            -(self.rng.below(1000) as i64)
        } else {
            0
        };
        let user = self.rng.below(100_000);
        let page = self.zipf.sample(&mut self.rng);
        let referrer = REFERRERS[self.rng.below(REFERRERS.len() as u64) as usize];
        Some(PageView {
            user_id: format!("user-{user}"),
            page: format!("/p/{page}"),
            referrer: referrer.to_string(),
            ts: self.time + jitter,
        })
    }
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
