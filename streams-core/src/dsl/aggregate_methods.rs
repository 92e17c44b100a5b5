//! The `count`, `reduce` and `aggregate` methods (each with its `_with` form) that grouped,
//! time-windowed and sliding-windowed streams share.

use std::sync::Arc;

/// One record folded into its key's (or window's) aggregate, `None` for the first.
pub(crate) type AggStep<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// Generates the six aggregation methods on `$ty<K, V>`, whose results are tables keyed by
/// `$out` (`K`, or `Windowed<K>`), with docs that say what is aggregated (`per "key"`) and,
/// in braces, examples of `count`, `reduce` and `aggregate` (each may be empty). The type
/// (or its field `$inner`, with `via .field`) provides `aggregate_impl(materialized, default
/// value serde, node name prefix, step)` and `value_serde()` (the serde its values carry,
/// which a reduction's aggregate shares).
macro_rules! aggregate_methods {
    (
        impl $ty:ident $(via .$inner:tt)? -> KTable<$out:ty, _>, per $per:literal;
        count { $(#[$count:meta])* }
        reduce { $(#[$reduce:meta])* }
        aggregate { $(#[$aggregate:meta])* }
    ) => {
        impl<K: Data, V: Data> $ty<K, V> {
            #[doc = concat!("Counts records per ", $per, ".")]
            $(#[$count])*
            pub fn count(&self) -> KTable<$out, i64> {
                self.count_with(Materialized::new())
            }

            /// [`count`](Self::count) into a store with explicit options.
            pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<$out, i64> {
                let step: AggStep<K, V, i64> = Arc::new(|_, _, n| n.unwrap_or(0) + 1);
                let serde = Some(i64::default_serde());
                self$(.$inner)?.aggregate_impl(materialized, serde, "KSTREAM-AGGREGATE-", step)
            }

            #[doc = concat!("Combines the values of each ", $per, " with `reducer` (the first value is kept as is).")]
            $(#[$reduce])*
            pub fn reduce<F>(&self, reducer: F) -> KTable<$out, V>
            where
                F: Fn(V, V) -> V + Send + Sync + 'static,
            {
                self.reduce_with(reducer, Materialized::new())
            }

            /// [`reduce`](Self::reduce) into a store with explicit options.
            pub fn reduce_with<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<$out, V>
            where
                F: Fn(V, V) -> V + Send + Sync + 'static,
            {
                let step: AggStep<K, V, V> = Arc::new(move |_, v, agg| match agg {
                    None => v,
                    Some(a) => reducer(a, v),
                });
                let serde = self$(.$inner)?.value_serde();
                self$(.$inner)?.aggregate_impl(materialized, serde, "KSTREAM-REDUCE-", step)
            }

            #[doc = concat!("Folds the values of each ", $per, " into an aggregate that starts at `initializer()`, with the aggregate's default serde.")]
            $(#[$aggregate])*
            pub fn aggregate<VA: Data + DefaultSerde, I, A>(
                &self,
                initializer: I,
                aggregator: A,
            ) -> KTable<$out, VA>
            where
                I: Fn() -> VA + Send + Sync + 'static,
                A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
            {
                let materialized = Materialized::with_value(VA::default_serde());
                self.aggregate_with(initializer, aggregator, materialized)
            }

            /// [`aggregate`](Self::aggregate) into a store with explicit options.
            pub fn aggregate_with<VA: Data, I, A>(
                &self,
                initializer: I,
                aggregator: A,
                materialized: Materialized<K, VA>,
            ) -> KTable<$out, VA>
            where
                I: Fn() -> VA + Send + Sync + 'static,
                A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
            {
                let step: AggStep<K, V, VA> =
                    Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(&initializer)));
                self$(.$inner)?.aggregate_impl(materialized, None, "KSTREAM-AGGREGATE-", step)
            }
        }
    };
}
pub(crate) use aggregate_methods;
