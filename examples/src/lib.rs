//! Shared pieces of the examples: the page-view record and a seeded generator of realistic
//! page views (popular pages follow a Zipf-like distribution); and [`activity`], the core of
//! the real-time user-activity-tracking app.

pub mod activity;

use serde::{Deserialize, Serialize};
use streams_core::{EventTime, StreamsSerde};

/// One page view, keyed by user id on the `page_views` topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StreamsSerde, EventTime)]
#[streams(format = "json")]
pub struct PageView {
    /// The user.
    pub user_id: String,
    /// The page path, e.g. `/p/123`.
    pub page: String,
    /// Where the user came from: search, social, direct, email or bot.
    pub referrer: String,
    /// Event time, ms since the epoch.
    #[event_time]
    pub ts: i64,
}

/// A small, fast, seeded pseudo-random generator (SplitMix64): the same seed gives the same
/// data on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^s.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// A distribution over `n` ranks with exponent `s`.
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
    /// A random rank.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.cdf
            .partition_point(|&c| c < u)
            .min(self.cdf.len().saturating_sub(1))
    }
}

/// Generates the standard benchmark workload's page views (see docs/BENCHMARKS.md):
/// users uniform over `users`, pages Zipf over `pages`, event time advancing about 1 ms per
/// record from `start_ms` with a little jitter.
#[derive(Debug, Clone)]
pub struct PageViewGenerator {
    rng: Rng,
    zipf: Zipf,
    users: u64,
    time: i64,
}

const REFERRERS: [&str; 5] = ["search", "social", "direct", "email", "bot"];

impl PageViewGenerator {
    /// A generator with a fixed seed.
    pub fn new(seed: u64, users: u64, pages: usize, start_ms: i64) -> Self {
        Self {
            rng: Rng::new(seed),
            zipf: Zipf::new(pages, 1.1),
            users: users.max(1),
            time: start_ms,
        }
    }
}

impl Iterator for PageViewGenerator {
    type Item = PageView;
    fn next(&mut self) -> Option<PageView> {
        self.time += 1;
        // A few records arrive out of order by up to a second.
        let jitter = if self.rng.below(100) == 0 {
            -(self.rng.below(1000) as i64)
        } else {
            0
        };
        let user = self.rng.below(self.users);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_seeded_and_skewed() {
        let a: Vec<_> = PageViewGenerator::new(7, 100, 1000, 0).take(1000).collect();
        let b: Vec<_> = PageViewGenerator::new(7, 100, 1000, 0).take(1000).collect();
        assert_eq!(a, b);
        let top = a.iter().filter(|v| v.page == "/p/0").count();
        let tail = a.iter().filter(|v| v.page == "/p/999").count();
        assert!(top > 50 && tail < 5, "top {top} tail {tail}");
    }
}
