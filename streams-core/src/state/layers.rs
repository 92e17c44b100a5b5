//! The layers a window or session store gets (cache, change logging, metering), shared by
//! their builders.

use std::sync::{Arc, Mutex};

use streams_state::{ChangelogSink, HitRatioStats, StoreMetrics, ThreadCache};

use crate::config::{DslStore, StreamsConfig};
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

/// Where a window or session store builder gets its stores: a given supplier, or the
/// application's default engine (`default.dsl.store`) with a name, retention and (window
/// stores) window size.
pub(super) enum Supplier<S: ?Sized> {
    Given(Arc<S>),
    Default {
        name: String,
        retention: i64,
        size: i64,
    },
}

impl<S: ?Sized> Clone for Supplier<S> {
    fn clone(&self) -> Self {
        match self {
            Supplier::Given(s) => Supplier::Given(s.clone()),
            Supplier::Default {
                name,
                retention,
                size,
            } => Supplier::Default {
                name: name.clone(),
                retention: *retention,
                size: *size,
            },
        }
    }
}

/// A window or session store supplier, as [`Supplier`] needs it.
pub(super) trait SegmentedSupplier {
    fn supplier_name(&self) -> &str;
    fn retention(&self) -> i64;
    /// The supplier of the engine `store`.
    fn on_engine(store: DslStore, name: &str, retention: i64, size: i64) -> Result<Arc<Self>>;
}

impl<S: ?Sized + SegmentedSupplier> Supplier<S> {
    pub(super) fn name(&self) -> &str {
        match self {
            Supplier::Given(s) => s.supplier_name(),
            Supplier::Default { name, .. } => name,
        }
    }
    pub(super) fn retention(&self) -> i64 {
        match self {
            Supplier::Given(s) => s.retention(),
            Supplier::Default { retention, .. } => *retention,
        }
    }
    pub(super) fn resolve(&self, config: &StreamsConfig) -> Result<Arc<S>> {
        match self {
            Supplier::Given(s) => Ok(s.clone()),
            Supplier::Default {
                name,
                retention,
                size,
            } => S::on_engine(config.default_dsl_store(), name, *retention, *size),
        }
    }
}

/// [`SegmentedSupplier`] for `dyn $trait`, whose RocksDB and in-memory suppliers are made
/// with `new($args)` from `name`, `retention` and `size`.
macro_rules! segmented_supplier {
    ($trait:ident: $rocks:ident, $memory:ident, |$name:ident, $retention:ident, $size:ident| ($($arg:expr),*)) => {
        impl super::layers::SegmentedSupplier for dyn $trait {
            fn supplier_name(&self) -> &str {
                $trait::name(self)
            }
            fn retention(&self) -> i64 {
                self.retention_period()
            }
            fn on_engine(store: DslStore, $name: &str, $retention: i64, $size: i64) -> Result<Arc<Self>> {
                let $name = $name.to_string();
                Ok(match store {
                    DslStore::RocksDb => Arc::new(streams_state::$rocks::new($($arg),*)?),
                    DslStore::InMemory => Arc::new(streams_state::$memory::new($($arg),*)?),
                })
            }
        }
    };
}
pub(super) use segmented_supplier;

/// The struct, `Debug` and setters that the window and session store builders share.
macro_rules! segmented_store_builder {
    ($(#[$meta:meta])* $builder:ident, $supplier:ident) => {
        $(#[$meta])*
        pub struct $builder<K, V> {
            pub(super) supplier: $supplier,
            pub(super) key_serde: SerdeRef<K>,
            pub(super) value_serde: SerdeRef<V>,
            pub(super) logging: bool,
            pub(super) caching: bool,
            /// DSL stores with the cache off still report each write as it happens (a cache
            /// with no budget), so their operator forwards it.
            pub(super) write_through: bool,
        }

        impl<K, V> std::fmt::Debug for $builder<K, V> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($builder))
                    .field("name", &self.supplier.name())
                    .finish()
            }
        }

        impl<K, V> $builder<K, V> {
            /// Stores from `supplier`, logged, not cached.
            pub(super) fn new(supplier: $supplier, key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
                Self {
                    supplier,
                    key_serde,
                    value_serde,
                    logging: true,
                    caching: false,
                    write_through: false,
                }
            }
        }

        $crate::state::layers::store_builder_setters!($builder);
    };
}
pub(super) use segmented_store_builder;

/// The change-logging, caching and metering layers of a window or session store, e.g.
/// `segmented_layers!(WindowStore: LoggingWindowStore, CachingWindowStore,
/// MeteredWindowStore; caching, write_through)`: the cache is there when `caching`, or
/// with no budget when only `write_through`.
macro_rules! segmented_layers {
    ($store:ident: $logging:ident, $cached:ident, $metered:ident; $caching:expr, $write_through:expr) => {
        Layers {
            log: |store, sink| Box::new(streams_state::$logging::new(store, sink)),
            cache: ($caching || $write_through).then_some((
                |store, cache, stats| {
                    let mut cached = streams_state::$cached::new(store, cache);
                    if let Some(stats) = stats {
                        cached = cached.with_hit_ratio(stats);
                    }
                    Box::new(cached) as Box<dyn $store>
                },
                $caching,
            )),
            meter: |store| {
                let metered = streams_state::$metered::new(store);
                let ops = metered.metrics().clone();
                (Box::new(metered) as Box<dyn $store>, ops)
            },
        }
    };
}
pub(super) use segmented_layers;

/// The logging and caching setters of every store builder.
macro_rules! store_builder_setters {
    ($builder:ident) => {
        impl<K, V> $builder<K, V> {
            /// Logs changes to `<application.id>-<name>-changelog` (default) or not.
            pub fn with_logging_enabled(mut self, enabled: bool) -> Self {
                self.logging = enabled;
                self
            }

            /// Puts a record cache in front of the store. Default: off.
            pub fn with_caching_enabled(mut self, enabled: bool) -> Self {
                self.caching = enabled;
                self
            }

            /// Makes every write visible to the DSL operator that owns the store even with
            /// the cache off (as a cache with no budget does).
            pub(crate) fn forwarding_changes(mut self) -> Self {
                self.write_through = true;
                self
            }
        }
    };
}
pub(super) use store_builder_setters;
