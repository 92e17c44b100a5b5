//! [`StreamsBuilder`] and the helpers every DSL operator uses to add nodes.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Data;
use crate::error::{Result, TopologyError};
use crate::internals::node::{Children, NodeBox, NodeBuild, NodeFactory};
use crate::internals::sink::{SinkNode, SinkTarget, TopicExtractorFn};
use crate::internals::source::SourceNode;
use crate::internals::table_source::TableSource;
use crate::internals::task::TaskContext;
use crate::record::Record;
use crate::serde::{DefaultSerde, OptionSerde, Serde, SerdeError, SerdeRef};
use crate::state::StoreBuilder;
use crate::time::{ExtractorRef, RecordTimestamp};
use crate::topology::{InternalBuilder, NodeKind, TopicName, Topology};

use super::nodes::{FlushFn, FnNode, StoreNode, StoreProcess};
use super::options::{Consumed, Materialized};
use super::{KStream, KTable};

use super::table_store::add_store_on_demand;
pub(crate) use super::table_store::{
    Shared, TsHandle, add_ts_store, flush_and_forward, forward_flushed, update_aggregate,
};

/// Builds a topology with the DSL.
///
/// ```
/// use streams_core::prelude::*;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("sentences")
///     .flat_map_values(|s: String| s.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
///     .select_key(|_, word| word.clone())
///     .group_by_key()
///     .count()
///     .to_stream()
///     .to("word-counts");
/// let topology = builder.build().unwrap();
/// assert_eq!(topology.describe().subtopologies.len(), 2); // cut at the repartition topic
/// ```
pub struct StreamsBuilder {
    pub(crate) inner: Shared,
}

impl std::fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamsBuilder")
    }
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            inner: Rc::new(RefCell::new(InternalBuilder::new())),
        }
    }

    /// A stream of `topic`, with the default serdes of `K` and `V` and the record timestamp
    /// as event time.
    pub fn stream<K: Data + DefaultSerde, V: Data + DefaultSerde>(
        &self,
        topic: &str,
    ) -> KStream<K, V> {
        self.stream_with(
            &[topic],
            Consumed::with(K::default_serde(), V::default_serde()),
        )
    }

    /// A stream of one or more topics, with explicit options; serdes left unset fall back to
    /// nothing, so set them or use [`stream`](Self::stream).
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let name = self
            .inner
            .borrow_mut()
            .name_or(consumed.name.as_deref(), "KSTREAM-SOURCE-");
        let ks = require_serde(&self.inner, &name, "key", consumed.key_serde, None);
        let vs = require_serde(&self.inner, &name, "value", consumed.value_serde, None);
        let node = add_source(
            &self.inner,
            name,
            topics
                .iter()
                .map(|t| TopicName::External((*t).to_string()))
                .collect(),
            ks.clone(),
            vs.clone(),
            consumed.extractor,
            consumed.policy,
        );
        KStream::new(self.inner.clone(), node, Some(ks), Some(vs), false)
    }

    /// A table of `topic`: each record upserts its key; a null value is a tombstone that
    /// deletes it. Materialized in a store with a generated name.
    ///
    /// ```
    /// use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("regions").to_stream().to("region-changes");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("t")).unwrap();
    /// let input = driver.input_topic::<String, Option<String>>("regions");
    /// let out = driver.output_topic::<String, Option<String>>("region-changes");
    /// input.pipe_input("u1".into(), Some("eu".into())).unwrap();
    /// input.pipe_input("u1".into(), None).unwrap(); // tombstone
    /// assert_eq!(out.read_values_to_list().unwrap(), vec![Some("eu".to_string()), None]);
    /// ```
    pub fn table<K: Data + DefaultSerde, V: Data + DefaultSerde>(
        &self,
        topic: &str,
    ) -> KTable<K, V> {
        self.table_with(
            topic,
            Consumed::with(K::default_serde(), V::default_serde()),
            Materialized::new(),
        )
    }

    /// A table of `topic` with explicit options.
    pub fn table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        mut materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        // Kafka names an unnamed table's store after its topic, before the source's name:
        // `builder.table("users")` first gives `users-STATE-STORE-0000000000`, then
        // `KSTREAM-SOURCE-0000000001` and `KTABLE-SOURCE-0000000002`. It adds that store
        // only for an operator that reads it (`KTable::materialize_on_demand`).
        let unnamed = materialized.name.is_none()
            && materialized.supplier.is_none()
            && materialized.history.is_none();
        if materialized.name.is_none() {
            let prefix = format!("{topic}-STATE-STORE-");
            materialized.name = Some(self.inner.borrow_mut().generate(&prefix));
        }
        let source_name = self
            .inner
            .borrow_mut()
            .name_or(consumed.name.as_deref(), "KSTREAM-SOURCE-");
        let ks = require_serde(
            &self.inner,
            &source_name,
            "key",
            consumed.key_serde.or(materialized.key_serde.clone()),
            None,
        );
        let vs = require_serde(
            &self.inner,
            &source_name,
            "value",
            consumed.value_serde.or(materialized.value_serde.clone()),
            None,
        );
        let opt_vs: SerdeRef<Option<V>> = Arc::new(OptionSerde::new(vs.clone()));
        // The table source reads `Option<V>`: a given extractor sees the value of upserts;
        // tombstones keep their record timestamp.
        let extractor = consumed
            .extractor
            .map(|e| Arc::new(TableExtractor(e)) as ExtractorRef<K, Option<V>>);
        let source = add_source::<K, Option<V>>(
            &self.inner,
            source_name,
            vec![TopicName::External(topic.to_string())],
            ks.clone(),
            opt_vs,
            extractor,
            consumed.policy,
        );
        if let Some(retention) = materialized.history {
            let (node, store, history) =
                super::versioned::add_versioned_table_source::<K, Option<V>, V>(
                    &self.inner,
                    source,
                    None,
                    materialized,
                    retention,
                    ks.clone(),
                    vs.clone(),
                    |v| v,
                );
            let mut table = KTable::new(self.inner.clone(), node, Some(ks), Some(vs), Some(store));
            table.history = Some(history);
            return table;
        }
        if unnamed {
            return add_unmaterialized_table::<K, Option<V>, V>(
                &self.inner,
                source,
                None,
                materialized,
                (ks, vs),
                |v| v,
            );
        }
        let (node, store) = add_table_source_node::<K, Option<V>, V>(
            &self.inner,
            source,
            None,
            materialized,
            ks.clone(),
            vs.clone(),
            |v| v,
            true,
        );
        KTable::new(self.inner.clone(), node, Some(ks), Some(vs), Some(store))
    }

    /// Adds a store (key-value, window or session) for Processor API nodes; connect it by
    /// name in [`KStream::process`](crate::dsl::KStream::process).
    pub fn add_state_store<B: StoreBuilder>(&self, builder: B) {
        self.inner.borrow_mut().add_store(builder.into_spec());
    }

    /// Builds the topology, or reports the first mistake (a missing serde, a duplicate name,
    /// no source...).
    pub fn build(self) -> Result<Topology, TopologyError> {
        let inner = std::mem::replace(&mut *self.inner.borrow_mut(), InternalBuilder::new());
        inner.build()
    }
}

/// Applies a stream extractor to a table source's upserts.
struct TableExtractor<K, V>(ExtractorRef<K, V>);

impl<K: Data, V: Data> crate::time::TimestampExtractor<K, Option<V>> for TableExtractor<K, V> {
    fn extract(&self, record: &Record<K, Option<V>>, partition_time: i64) -> i64 {
        match &record.value {
            Some(v) => self.0.extract(
                &Record {
                    key: record.key.clone(),
                    value: v.clone(),
                    timestamp: record.timestamp,
                    headers: record.headers.clone(),
                },
                partition_time,
            ),
            None => record.timestamp,
        }
    }
}

/// The names and serdes every aggregation starts from.
pub(crate) struct Aggregation<K, VA> {
    /// The store's name (given, or `<prefix>STATE-STORE-<n>`).
    pub(crate) store: String,
    /// The processor's name (`<prefix><n>`).
    pub(crate) node: String,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<VA>,
}

/// Names an aggregation (store first, as Kafka Streams does) and resolves its serdes from
/// `materialized`, the grouping's key serde and the aggregate's default value serde.
pub(crate) fn aggregation<K: 'static, VA: 'static>(
    b: &Shared,
    materialized: &Materialized<K, VA>,
    prefix: &str,
    carried_key: Option<SerdeRef<K>>,
    default_value: Option<SerdeRef<VA>>,
) -> Aggregation<K, VA> {
    let store = b.borrow_mut().name_or(
        materialized.name.as_deref(),
        &format!("{prefix}STATE-STORE-"),
    );
    let node = b.borrow_mut().generate(prefix);
    let key_serde = require_serde(b, &node, "key", materialized.key_serde.clone(), carried_key);
    let value_serde = require_serde(
        b,
        &node,
        "value",
        materialized.value_serde.clone(),
        default_value,
    );
    Aggregation {
        store,
        node,
        key_serde,
        value_serde,
    }
}

/// A serde that only exists in topologies that fail to build (the missing serde has been
/// recorded as an error); it can never run.
struct Missing;

impl<T: 'static> Serde<T> for Missing {
    fn serialize_into(&self, _: &T, _: &mut Vec<u8>) -> Result<(), SerdeError> {
        Err(SerdeError::Encode {
            format: "none",
            type_name: std::any::type_name::<T>(),
            detail: "no serde was configured".into(),
        })
    }
    fn deserialize(&self, _: &[u8]) -> Result<T, SerdeError> {
        Err(SerdeError::Invalid {
            format: "none",
            type_name: std::any::type_name::<T>(),
            detail: "no serde was configured".into(),
        })
    }
}

/// The first serde that is set, or a recorded [`TopologyError::MissingSerde`].
pub(crate) fn require_serde<T: 'static>(
    b: &Shared,
    operator: &str,
    which: &'static str,
    given: Option<SerdeRef<T>>,
    carried: Option<SerdeRef<T>>,
) -> SerdeRef<T> {
    match given.or(carried) {
        Some(s) => s,
        None => {
            b.borrow_mut().error(TopologyError::MissingSerde {
                operator: operator.to_string(),
                which,
                type_name: std::any::type_name::<T>(),
            });
            Arc::new(Missing)
        }
    }
}

pub(crate) fn add_source<K: Data, V: Data>(
    b: &Shared,
    name: String,
    topics: Vec<TopicName>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    extractor: Option<ExtractorRef<K, V>>,
    policy: Option<crate::time::InvalidTimestampPolicy>,
) -> usize {
    let extractor: ExtractorRef<K, V> = extractor.unwrap_or_else(|| Arc::new(RecordTimestamp));
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::source(SourceNode::new(
            nb.topics,
            nb.partition,
            ks.clone(),
            vs.clone(),
            extractor.clone(),
            policy.unwrap_or(nb.config.invalid_timestamp_policy()),
            nb.children,
        )))
    });
    b.borrow_mut()
        .add_node(name, NodeKind::Source { topics }, &[], factory)
}

pub(crate) fn add_sink<K: Data, V: Data>(
    b: &Shared,
    name: String,
    parent: usize,
    topic: TopicName,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> usize {
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        let topic = nb
            .topics
            .first()
            .cloned()
            .ok_or_else(|| crate::error::StreamsError::Internal("sink without topic".into()))?;
        Ok(NodeBox::typed::<K, V, _>(SinkNode::new(
            nb.name,
            SinkTarget::Fixed(topic),
            ks.clone(),
            vs.clone(),
        )))
    });
    b.borrow_mut().add_node(
        name,
        NodeKind::Sink { topic: Some(topic) },
        &[parent],
        factory,
    )
}

pub(crate) fn add_dynamic_sink<K: Data, V: Data>(
    b: &Shared,
    name: String,
    parent: usize,
    extractor: TopicExtractorFn<K, V>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> usize {
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, V, _>(SinkNode::new(
            nb.name,
            SinkTarget::Dynamic(extractor.clone()),
            ks.clone(),
            vs.clone(),
        )))
    });
    b.borrow_mut()
        .add_node(name, NodeKind::Sink { topic: None }, &[parent], factory)
}

/// Adds a stateless node whose per-task closure `make()` builds.
pub(crate) fn add_fn_node<K: Data, V: Data, F, M>(
    b: &Shared,
    name: String,
    parents: &[usize],
    make: M,
) -> usize
where
    M: Fn() -> F + Send + Sync + 'static,
    F: FnMut(Record<K, V>, &Children, &mut TaskContext) -> Result<()> + Send + 'static,
{
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, V, _>(FnNode::new(make(), nb.children)))
    });
    b.borrow_mut()
        .add_node(name, NodeKind::Processor, parents, factory)
}

/// Adds a node with a store handle of type `S`, connected to the store `store`; `on_flush`
/// runs on commit.
pub(crate) fn add_store_node<K: Data, V: Data, S: Clone + Send + 'static, F, M>(
    b: &Shared,
    name: String,
    parents: &[usize],
    store: &str,
    on_flush: Option<FlushFn<S>>,
    make: M,
) -> usize
where
    M: Fn() -> F + Send + Sync + 'static,
    F: StoreProcess<K, V, S> + 'static,
{
    let store_name: Arc<str> = Arc::from(store);
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, V, _>(StoreNode::<K, V, S, F>::new(
            store_name.clone(),
            make(),
            on_flush,
            nb.children,
        )))
    });
    let mut ib = b.borrow_mut();
    let idx = ib.add_node(name, NodeKind::Processor, parents, factory);
    ib.connect_store(idx, store);
    idx
}

/// Adds a table source node (upsert/delete into a store, forward `Change`s). `to_opt` turns
/// the input value into the new table value (`None` deletes); `absent_deletes`: see
/// [`TableSource::forwarding_absent_deletes`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_table_source_node<K: Data, VIn: Data, V: Data>(
    b: &Shared,
    parent: usize,
    processor_name: Option<&str>,
    materialized: Materialized<K, V>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    to_opt: fn(VIn) -> Option<V>,
    absent_deletes: bool,
) -> (usize, String) {
    let store_name = b
        .borrow_mut()
        .name_or(materialized.name.as_deref(), "KTABLE-SOURCE-STATE-STORE-");
    let name = b.borrow_mut().name_or(processor_name, "KTABLE-SOURCE-");
    let serdes = (ks.clone(), vs.clone());
    let store = add_ts_store(b, store_name, &materialized, ks, vs);
    let always = Arc::new(AtomicBool::new(true));
    let factory = table_source_factory(&store, serdes, to_opt, absent_deletes, always);
    let node = {
        let mut ib = b.borrow_mut();
        let node = ib.add_node(name, NodeKind::Processor, &[parent], factory);
        ib.connect_store(node, &store);
        node
    };
    (node, store)
}

/// The factory of a table source node on the store `store`: with the store once
/// `has_store` is raised (read when a task is built, after the DSL is done), forwarding
/// deletes of absent keys if asked, dropping null keys.
fn table_source_factory<K: Data, VIn: Data, V: Data>(
    store: &str,
    (keys, nulls): (SerdeRef<K>, SerdeRef<V>),
    to_opt: fn(VIn) -> Option<V>,
    absent_deletes: bool,
    has_store: Arc<AtomicBool>,
) -> NodeFactory {
    let store: Arc<str> = Arc::from(store);
    Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, VIn, _>(
            TableSource::<K, VIn, V>::new(store.clone(), to_opt, nulls.clone(), nb.children)
                .forwarding_absent_deletes(absent_deletes)
                .dropping_null_keys(keys.clone())
                .with_store(has_store.load(Ordering::Relaxed)),
        ))
    })
}

/// Adds the source node of a table that Kafka does not materialize (no store name, no
/// supplier: `builder.table(topic)`, `to_table()`): it forwards each record as it comes, as
/// a change without an old value, deletes of keys it never saw included. Its store
/// (`materialized.name`, already chosen) is added, cached and logged as `materialized`
/// says, only when an operator reads it ([`KTable::materialize_on_demand`]).
pub(crate) fn add_unmaterialized_table<K: Data, VIn: Data, V: Data>(
    b: &Shared,
    parent: usize,
    processor_name: Option<&str>,
    materialized: Materialized<K, V>,
    (ks, vs): (SerdeRef<K>, SerdeRef<V>),
    to_opt: fn(VIn) -> Option<V>,
) -> KTable<K, V> {
    let store_name = b
        .borrow_mut()
        .name_or(materialized.name.as_deref(), "KTABLE-SOURCE-STATE-STORE-");
    let name = b.borrow_mut().name_or(processor_name, "KTABLE-SOURCE-");
    let has_store = Arc::new(AtomicBool::new(false));
    let serdes = (ks.clone(), vs.clone());
    let factory = table_source_factory(&store_name, serdes, to_opt, true, has_store.clone());
    let node = b
        .borrow_mut()
        .add_node(name, NodeKind::Processor, &[parent], factory);
    let on_demand = add_store_on_demand(
        node,
        &store_name,
        &materialized,
        (ks.clone(), vs.clone()),
        has_store,
    );
    let mut table = KTable::new(b.clone(), node, Some(ks), Some(vs), Some(store_name));
    table.on_demand = Some(on_demand);
    table
}
