//! [`KGroupedStream`]: a stream grouped by key, ready for aggregation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Data;
use crate::error::Result;
use crate::internals::forward::null_value_dropped;
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::Record;
use crate::serde::{DefaultSerde, SerdeRef};

use super::aggregate_methods::{AggStep, aggregate_methods};
use super::builder::{
    TsHandle, add_store_node, add_ts_store, aggregation, flush_and_forward, require_serde,
    update_aggregate,
};
use super::cogroup::CogroupedKStream;
use super::kstream::filtered_repartition;
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

debug_fields!(KGroupedStream<K, V>, s => { "name": s.name, "repartition_required": s.repartition_required });

aggregate_methods! {
    impl KGroupedStream -> KTable<K, _>, per "key";
    count {
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
    }
    reduce {
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
    }
    aggregate {
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
    }
}

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

    /// A copy of this grouping (the same stream, name and serdes) with an identity of its
    /// own.
    pub(crate) fn copy(&self) -> Self {
        let (ks, vs) = (self.key_serde.clone(), self.value_serde.clone());
        Self::new(
            self.stream.clone(),
            self.name.clone(),
            ks,
            vs,
            self.repartition_required,
        )
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
        // Null keys cannot be grouped: dropped (and counted) before the repartition topic.
        filtered_repartition(b, parent, &base, ks.clone(), vs)
    }

    pub(crate) fn builder(&self) -> &super::builder::Shared {
        &self.stream.b
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
        let carried_key = self.key_serde.clone();
        let agg = aggregation(&b, &materialized, prefix, carried_key, default_value_serde);
        let (store_name, name, ks, vas) = (agg.store, agg.node, agg.key_serde, agg.value_serde);
        let parent = self.upstream(&store_name, &ks);
        let store = add_ts_store(&b, store_name, &materialized, ks.clone(), vas.clone());
        // Null values are dropped here, not at the repartition (Kafka's order: the null key
        // is filtered before the topic, the null value by the aggregation).
        let nulls = self.value_serde.clone();
        let node = add_store_node::<K, V, TsHandle<K, VA>, _, _>(
            &b,
            name,
            &[parent],
            &store,
            Some(flush_and_forward::<TsHandle<K, VA>>),
            move || {
                let (step, nulls) = (step.clone(), nulls.clone());
                move |store: &TsHandle<K, VA>,
                      r: Record<K, V>,
                      ch: &Children,
                      t: &mut TaskContext|
                      -> Result<()> {
                    if null_value_dropped(nulls.as_ref(), &r.value, t) {
                        return Ok(());
                    }
                    update_aggregate(store, r.key, r.timestamp, ch, t, |k, old| {
                        Some(step(k, r.value, old))
                    })
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
