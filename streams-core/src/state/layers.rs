//! The layers a window or session store gets (cache, change logging, metering), shared by
//! their builders.

use std::sync::{Arc, Mutex};

use streams_state::{ChangelogSink, HitRatioStats, StoreMetrics, ThreadCache};

use crate::error::Result;

use super::*;

/// Wraps a store in another layer (change logging).
pub(super) type Wrap<S, A> = fn(Box<S>, A) -> Box<S>;
/// Wraps a store in a record cache with a budget, recording its hit ratio if given stats.
pub(super) type WrapCache<S> = fn(Box<S>, ThreadCache, Option<Arc<HitRatioStats>>) -> Box<S>;
/// Wraps a store in the metered layer; returns it with its statistics.
pub(super) type Meter<S> = fn(Box<S>) -> (Box<S>, Arc<StoreMetrics>);

/// The layers a window or session store may get around its engine, innermost first.
pub(super) struct Layers<S: ?Sized> {
    /// Change logging, when the task gives a changelog.
    pub(super) log: Wrap<S, Box<dyn ChangelogSink>>,
    /// A record cache, and whether it has the thread's budget (else it writes through).
    pub(super) cache: Option<(WrapCache<S>, bool)>,
    /// The metered layer (`DEBUG` recording level only).
    pub(super) meter: Meter<S>,
}

/// The spec of a logged window or session store: open the engine, wrap it in change logging
/// if the task gave a changelog, share it, and build its typed handle.
pub(super) fn windowed_store_spec<S, H>(
    name: String,
    logged: bool,
    retention: i64,
    open: impl Fn(&StoreBuild<'_>) -> Result<Box<S>> + Send + Sync + 'static,
    layers: Layers<S>,
    handle: impl Fn(Arc<str>, Arc<Mutex<Box<S>>>) -> H + Send + Sync + 'static,
) -> StoreSpecParts
where
    S: ?Sized + Send + 'static,
    H: Send + Sync + 'static,
    Mutex<Box<S>>: RawStore,
{
    let shared_name: Arc<str> = Arc::from(name.as_str());
    let factory: StoreFactory = Arc::new(move |mut b: StoreBuild<'_>| {
        let debug = b.config.metrics_recording_level().records_debug();
        let mut meters = StoreMeters::default();
        let Layers { log, cache, meter } = &layers;
        let mut store = open(&b)?;
        if let Some(sink) = b.changelog.take() {
            store = log(store, sink);
        }
        if let Some((cache, budgeted)) = *cache {
            let budget = if budgeted {
                b.cache.clone()
            } else {
                ThreadCache::new(0)
            };
            // A write-through cache (no budget) is no cache: no hit ratio.
            let stats = (debug && budgeted).then(|| Arc::new(HitRatioStats::default()));
            meters.hit_ratio = stats.clone();
            store = cache(store, budget, stats);
        }
        if debug {
            let (metered, ops) = meter(store);
            meters.ops = Some(ops);
            store = metered;
        }
        let raw = Arc::new(Mutex::new(store));
        Ok(StoreEntry {
            name: shared_name.clone(),
            raw: raw.clone(),
            typed: Arc::new(handle(shared_name.clone(), raw)),
            meters,
        })
    });
    StoreSpecParts {
        name,
        logged,
        changelog: ChangelogKind::CompactDelete {
            retention_ms: retention.saturating_add(DAY_MS),
        },
        factory,
    }
}
