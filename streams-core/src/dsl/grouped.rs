//! [`KGroupedStream`]: a stream grouped by key, ready for aggregation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Data;
use crate::error::Result;
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::Record;
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::ValueAndTimestamp;

use super::builder::{
    Aggregation, TsHandle, add_fn_node, add_store_node, add_ts_store, aggregation,
    flush_and_forward, forward_flushed, require_serde,
};
use super::cogroup::CogroupedKStream;
use super::kstream::repartition_through;
use super::options::Materialized;
use super::{KStream, KTable};

/// A stream grouped by key. Only aggregations are offered here: `count`, `reduce` and
/// `aggregate`, each giving a [`KTable`] with one update per input record.
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    name: Option<String>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V>>,
    repartition_required: bool,
    /// Tells grouped streams apart: a cogroup keeps one aggregator per grouped stream.
    id: u64,
}

/// The next [`KGroupedStream`] id.
static NEXT_GROUPED_ID: AtomicU64 = AtomicU64::new(0);

impl<K, V> std::fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KGroupedStream")
            .field("name", &self.name)
            .field("repartition_required", &self.repartition_required)
            .finish()
    }
}

/// The per-key step of an aggregation: key, new value, current aggregate (if any).
type AggStep<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(
        stream: KStream<K, V>,
        name: Option<String>,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        repartition_required: bool,
    ) -> Self {
        Self {
            stream,
            name,
            key_serde,
            value_serde,
            repartition_required,
            id: NEXT_GROUPED_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Starts a cogroup (Kafka Streams' KIP-150): several grouped streams with the same key
    /// type, each with its own value type and `aggregator`, folded into one aggregate per
    /// key in one store. Add more inputs with [`CogroupedKStream::cogroup`], then call
    /// [`aggregate`](CogroupedKStream::aggregate) or a windowed form.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views").group_by_key(); // user -> page
    /// let buys = builder.stream::<String, i64>("purchases").group_by_key(); // user -> amount
    /// views
    ///     .cogroup(|_, page: String, log: String| format!("{log}viewed {page};"))
    ///     .cogroup(&buys, |_, amount: i64, log: String| format!("{log}paid {amount};"))
    ///     .aggregate(String::new)
    ///     .to_stream()
    ///     .to("activity");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("views").pipe_input("u1".into(), "/a".into()).unwrap();
    /// driver.input_topic::<String, i64>("purchases").pipe_input("u1".into(), 30).unwrap();
    /// let out = driver.output_topic::<String, Option<String>>("activity");
    /// assert_eq!(out.read_values_to_list().unwrap(), vec![
    ///     Some("viewed /a;".to_string()),
    ///     Some("viewed /a;paid 30;".to_string()),
    /// ]);
    /// ```
    pub fn cogroup<VA: Data, A>(&self, aggregator: A) -> CogroupedKStream<K, VA>
    where
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        CogroupedKStream::new(self, aggregator)
    }

    /// This grouping's identity (see `id`).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Counts records per key.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").group_by_key()
    ///     .count_with(Materialized::as_("counts"))
    ///     .to_stream().to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, String>("in");
    /// input.pipe_input("a".into(), "x".into()).unwrap();
    /// input.pipe_input("a".into(), "y".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("out").read_values_to_list().unwrap(), vec![Some(1), Some(2)]);
    /// assert_eq!(driver.key_value_store::<String, i64>("counts").unwrap().get(&"a".into()).unwrap(), Some(2));
    /// ```
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::new())
    }

    /// Counts records per key into a store with explicit options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let step: AggStep<K, V, i64> = Arc::new(|_, _, n| n.unwrap_or(0) + 1);
        self.aggregate_impl(
            materialized,
            Some(i64::default_serde()),
            "KSTREAM-AGGREGATE-",
            step,
        )
    }

    /// Combines the values of each key with `reducer` (the first value is kept as is).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").group_by_key()
    ///     .reduce(|a, b| a.max(b))
    ///     .to_stream().to("max");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, i64>("in");
    /// for v in [3, 9, 4] { input.pipe_input("k".into(), v).unwrap(); }
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("max").read_values_to_list().unwrap(), vec![Some(3), Some(9), Some(9)]);
    /// ```
    pub fn reduce<F>(&self, reducer: F) -> KTable<K, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.reduce_with(reducer, Materialized::new())
    }

    /// [`reduce`](Self::reduce) into a store with explicit options.
    pub fn reduce_with<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<K, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let step: AggStep<K, V, V> = Arc::new(move |_, v, agg| match agg {
            None => v,
            Some(a) => reducer(a, v),
        });
        let vs = self.value_serde.clone();
        self.aggregate_impl(materialized, vs, "KSTREAM-REDUCE-", step)
    }

    /// Folds the values of each key into an aggregate that starts at `initializer()`, with
    /// the aggregate's default serde.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").group_by_key()
    ///     .aggregate(String::new, |_, v, agg: String| agg + &v)
    ///     .to_stream().to("concat");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, String>("in");
    /// for v in ["a", "b"] { input.pipe_input("k".into(), v.into()).unwrap(); }
    /// assert_eq!(driver.output_topic::<String, Option<String>>("concat").read_values_to_list().unwrap(),
    ///            vec![Some("a".to_string()), Some("ab".to_string())]);
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde, I, A>(
        &self,
        initializer: I,
        aggregator: A,
    ) -> KTable<K, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        self.aggregate_with(
            initializer,
            aggregator,
            Materialized::with_value(VA::default_serde()),
        )
    }

    /// [`aggregate`](Self::aggregate) into a store with explicit options.
    pub fn aggregate_with<VA: Data, I, A>(
        &self,
        initializer: I,
        aggregator: A,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        let step: AggStep<K, V, VA> =
            Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(&initializer)));
        self.aggregate_impl(materialized, None, "KSTREAM-AGGREGATE-", step)
    }

    /// The node an aggregation hangs off: the stream itself, or — if its key changed — a
    /// null-key filter, a repartition topic named after the grouping (or `store_name`) and
    /// its source.
    pub(crate) fn upstream(&self, store_name: &str, ks: &SerdeRef<K>) -> usize {
        let b = &self.stream.b;
        let parent = self.stream.node;
        if !self.repartition_required {
            return parent;
        }
        let base = self.name.clone().unwrap_or_else(|| store_name.to_string());
        let vs = require_serde(b, &base, "value", self.value_serde.clone(), None);
        // Null keys cannot be grouped: drop (and count) them before the repartition topic,
        // as Kafka Streams does.
        let filter_name = if self.name.is_some() {
            format!("{base}-repartition-filter")
        } else {
            b.borrow_mut().generate("KSTREAM-FILTER-")
        };
        let key_serde = ks.clone();
        let filter = add_fn_node::<K, V, _, _>(b, filter_name, &[parent], move || {
            let key_serde = key_serde.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                if key_serde.is_null(&r.key) {
                    t.metrics.dropped_records += 1;
                    Ok(())
                } else {
                    ch.forward(t, r)
                }
            }
        });
        repartition_through(b, filter, &base, self.name.is_some(), ks.clone(), vs, None)
    }

    pub(crate) fn builder(&self) -> &super::builder::Shared {
        &self.stream.b
    }

    pub(crate) fn stream(&self) -> &KStream<K, V> {
        &self.stream
    }

    pub(crate) fn name(&self) -> Option<String> {
        self.name.clone()
    }

    pub(crate) fn repartition_required(&self) -> bool {
        self.repartition_required
    }

    pub(crate) fn key_serde(&self) -> Option<SerdeRef<K>> {
        self.key_serde.clone()
    }

    pub(crate) fn value_serde(&self) -> Option<SerdeRef<V>> {
        self.value_serde.clone()
    }

    fn aggregate_impl<VA: Data>(
        &self,
        materialized: Materialized<K, VA>,
        default_value_serde: Option<SerdeRef<VA>>,
        prefix: &str,
        step: AggStep<K, V, VA>,
    ) -> KTable<K, VA> {
        let b = self.stream.b.clone();
        let Aggregation {
            store: store_name,
            node: name,
            key_serde: ks,
            value_serde: vas,
        } = aggregation(
            &b,
            &materialized,
            prefix,
            self.key_serde.clone(),
            default_value_serde,
        );
        let parent = self.upstream(&store_name, &ks);
        let store = add_ts_store(&b, store_name, &materialized, ks.clone(), vas.clone());
        let node = add_store_node::<K, V, TsHandle<K, VA>, _, _>(
            &b,
            name,
            &[parent],
            &store,
            Some(flush_and_forward::<K, VA>),
            move || {
                let step = step.clone();
                move |store: &TsHandle<K, VA>,
                      r: Record<K, V>,
                      ch: &Children,
                      t: &mut TaskContext|
                      -> Result<()> {
                    if store.is_null_key(&r.key) {
                        t.metrics.dropped_records += 1;
                        return Ok(());
                    }
                    let (key, value, rts) = (r.key, r.value, r.timestamp);
                    store.update(&key, |old| {
                        let (old_value, ts) = match old {
                            Some(o) => (Some(o.value), o.timestamp.max(rts)),
                            None => (None, rts),
                        };
                        let new = step(&key, value, old_value);
                        Ok((
                            Some(ValueAndTimestamp {
                                value: new,
                                timestamp: ts,
                            }),
                            (),
                        ))
                    })?;
                    forward_flushed(store, ch, t)
                }
            },
        );
        KTable::new(b.clone(), node, Some(ks), Some(vas), Some(store))
    }
}

impl<K, V> Materialized<K, V> {
    pub(crate) fn with_value(value_serde: SerdeRef<V>) -> Self {
        Self {
            value_serde: Some(value_serde),
            ..Self::default()
        }
    }
}
