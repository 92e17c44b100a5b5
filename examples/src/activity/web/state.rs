//! What the HTTP handlers share: the running app instance, its address and the
//! throughput figures the app samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use streams_core::query::HostInfo;
use streams_core::runtime::KafkaStreams;

/// Throughput figures sampled once a second by [`Stats::sample`].
#[derive(Debug, Default)]
pub struct Stats {
    /// Input events processed per second (last sample).
    events_per_sec: AtomicU64,
    /// Input events processed in all.
    processed: AtomicU64,
    /// Unprocessed input records (consumer lag) at the last sample.
    lag: AtomicU64,
    /// Final window results emitted so far (updated by the app).
    pub windows_closed: AtomicU64,
    /// Views and clicks this instance's generator has sent (updated by the app).
    pub generated: AtomicU64,
    last: Mutex<Option<(Instant, u64)>>,
}

impl Stats {
    /// Takes a sample: `processed` input events so far and the current `lag`.
    pub fn sample(&self, processed: u64, lag: i64) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, before)) = *last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let rate = processed.saturating_sub(before) as f64 / secs;
                self.events_per_sec
                    .store(rate.round() as u64, Ordering::Relaxed);
            }
        }
        *last = Some((now, processed));
        self.processed.store(processed, Ordering::Relaxed);
        self.lag.store(lag.max(0) as u64, Ordering::Relaxed);
    }

    /// Input events processed per second at the last sample.
    pub fn events_per_sec(&self) -> u64 {
        self.events_per_sec.load(Ordering::Relaxed)
    }

    /// Input events processed in all, at the last sample.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Consumer lag at the last sample.
    pub fn lag(&self) -> u64 {
        self.lag.load(Ordering::Relaxed)
    }
}

/// What the HTTP handlers share.
pub struct WebState {
    /// The running app instance.
    pub streams: Arc<KafkaStreams>,
    /// Throughput figures.
    pub stats: Arc<Stats>,
    /// This instance's `application.server`.
    pub me: Option<HostInfo>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState").field("me", &self.me).finish()
    }
}

/// The handlers' state.
pub(super) type Shared = Arc<WebState>;
