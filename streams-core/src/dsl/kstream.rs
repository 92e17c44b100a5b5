//! [`KStream`]: an unbounded stream of typed records.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Data;
use crate::internals::node::{Children, NodeBox, NodeBuild, NodeFactory};
use crate::internals::task::TaskContext;
use crate::processor::{NodeInfo, Processor, ProcessorNode};
use crate::record::{Record, RecordContext};
use crate::serde::{DefaultSerde, SerdeRef};
use crate::time::RecordTimestamp;
use crate::topology::{NodeKind, TopicName};

use super::builder::{
    Shared, add_dynamic_sink, add_fn_node, add_sink, add_source, add_table_source_node,
    add_unmaterialized_table, require_serde,
};
use super::options::{Branched, Grouped, Materialized, Named, Produced, Repartitioned};
use super::{KGroupedStream, KTable};

/// A stream of records keyed by `K` with values `V`.
///
/// Stateless operators return new streams; [`group_by_key`](Self::group_by_key) and
/// [`group_by`](Self::group_by) lead to aggregations. A stream whose key was changed
/// (`map`, `flat_map`, `select_key`, `process`) is marked: a following key-based stateful
/// operator inserts a repartition topic so that equal keys meet in one task.
pub struct KStream<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: usize,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) repartition_required: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        Self {
            b: self.b.clone(),
            node: self.node,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition_required: self.repartition_required,
        }
    }
}

debug_fields!(KStream<K, V>, s => { "node": s.node, "repartition_required": s.repartition_required });

/// The name Kafka Streams would generate, or the given one.
fn name(b: &Shared, named: &Named, prefix: &str) -> String {
    b.borrow_mut().name_or(named.name.as_deref(), prefix)
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        b: Shared,
        node: usize,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        repartition_required: bool,
    ) -> Self {
        Self {
            b,
            node,
            key_serde,
            value_serde,
            repartition_required,
        }
    }

    fn derive<K2: Data, V2: Data>(
        &self,
        node: usize,
        key_serde: Option<SerdeRef<K2>>,
        value_serde: Option<SerdeRef<V2>>,
        repartition_required: bool,
    ) -> KStream<K2, V2> {
        KStream::new(
            self.b.clone(),
            node,
            key_serde,
            value_serde,
            repartition_required,
        )
    }

    /// The serdes the stream carries, or else the types' defaults.
    fn serdes_or_default(&self) -> (SerdeRef<K>, SerdeRef<V>)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let ks = self.key_serde.clone().unwrap_or_else(K::default_serde);
        (
            ks,
            self.value_serde.clone().unwrap_or_else(V::default_serde),
        )
    }

    /// The serdes `operator` needs: those given, else those the stream carries (a missing
    /// one is a topology error).
    fn require_serdes(
        &self,
        operator: &str,
        key: Option<SerdeRef<K>>,
        value: Option<SerdeRef<V>>,
    ) -> (SerdeRef<K>, SerdeRef<V>) {
        let ks = require_serde(&self.b, operator, "key", key, self.key_serde.clone());
        let vs = require_serde(&self.b, operator, "value", value, self.value_serde.clone());
        (ks, vs)
    }

    /// Keeps the records for which `predicate` holds.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").filter(|_, v| *v > 10).to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let (input, output) = (driver.input_topic::<String, i64>("in"), driver.output_topic::<String, i64>("out"));
    /// input.pipe_key_values([("a".to_string(), 5), ("b".to_string(), 50)]).unwrap();
    /// assert_eq!(output.read_values_to_list().unwrap(), vec![50]);
    /// ```
    pub fn filter<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_named(predicate, Named::none(), false)
    }

    /// Keeps the records for which `predicate` does not hold.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").filter_not(|_, v| *v > 10).to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let (input, output) = (driver.input_topic::<String, i64>("in"), driver.output_topic::<String, i64>("out"));
    /// input.pipe_input("a".into(), 5).unwrap();
    /// input.pipe_input("b".into(), 50).unwrap();
    /// assert_eq!(output.read_values_to_list().unwrap(), vec![5]);
    /// ```
    pub fn filter_not<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_named(predicate, Named::none(), true)
    }

    /// [`filter`](Self::filter) (or `filter_not` when `negate`) with a processor name.
    pub fn filter_named<F>(&self, predicate: F, named: Named, negate: bool) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-FILTER-");
        let p = Arc::new(predicate);
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let p = p.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                if p(&r.key, &r.value) != negate {
                    ch.forward(t, r)
                } else {
                    Ok(())
                }
            }
        });
        self.derive(
            node,
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// Transforms each record into a new key and value. Marks the stream for repartitioning.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").map(|k, v| (v, k.len() as i64)).to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("abc".into(), "x".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, i64>("out").read_key_value().unwrap(), Some(("x".into(), 3)));
    /// ```
    pub fn map<K2: Data, V2: Data, F>(&self, mapper: F) -> KStream<K2, V2>
    where
        F: Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    {
        self.map_named(mapper, Named::none())
    }

    /// [`map`](Self::map) with a processor name.
    pub fn map_named<K2: Data, V2: Data, F>(&self, mapper: F, named: Named) -> KStream<K2, V2>
    where
        F: Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-MAP-");
        let f = Arc::new(mapper);
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                let (k, v) = f(r.key, r.value);
                ch.forward(
                    t,
                    Record {
                        key: k,
                        value: v,
                        timestamp: r.timestamp,
                        headers: r.headers,
                    },
                )
            }
        });
        self.derive(node, None, None, true)
    }

    /// Transforms each value; the key stays, so no repartitioning is needed.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").map_values(|v| v.len() as i64).to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "hello".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, i64>("out").read_value().unwrap(), Some(5));
    /// ```
    pub fn map_values<V2: Data, F>(&self, mapper: F) -> KStream<K, V2>
    where
        F: Fn(V) -> V2 + Send + Sync + 'static,
    {
        self.map_values_with_key(move |_, v| mapper(v), Named::none())
    }

    /// Transforms each value, seeing the key too, with a processor name.
    pub fn map_values_with_key<V2: Data, F>(&self, mapper: F, named: Named) -> KStream<K, V2>
    where
        F: Fn(&K, V) -> V2 + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-MAPVALUES-");
        let f = Arc::new(mapper);
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                let v = f(&r.key, r.value);
                ch.forward(
                    t,
                    Record {
                        key: r.key,
                        value: v,
                        timestamp: r.timestamp,
                        headers: r.headers,
                    },
                )
            }
        });
        self.derive(
            node,
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }

    /// Turns each record into zero or more records with new keys. Marks the stream for
    /// repartitioning.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in")
    ///     .flat_map(|_, v| v.split(',').map(|p| (p.to_string(), 1i64)).collect::<Vec<_>>())
    ///     .to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "a,b".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, i64>("out").read_keys_to_list().unwrap(), vec!["a", "b"]);
    /// ```
    pub fn flat_map<K2: Data, V2: Data, I, F>(&self, mapper: F) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
        F: Fn(K, V) -> I + Send + Sync + 'static,
    {
        self.flat_map_named(mapper, Named::none())
    }

    /// [`flat_map`](Self::flat_map) with a processor name.
    pub fn flat_map_named<K2: Data, V2: Data, I, F>(
        &self,
        mapper: F,
        named: Named,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
        F: Fn(K, V) -> I + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-FLATMAP-");
        let f = Arc::new(mapper);
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                for (k, v) in f(r.key, r.value) {
                    ch.forward(
                        t,
                        Record {
                            key: k,
                            value: v,
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        },
                    )?;
                }
                Ok(())
            }
        });
        self.derive(node, None, None, true)
    }

    /// Turns each value into zero or more values; the key stays.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in")
    ///     .flat_map_values(|v| v.split(' ').map(String::from).collect::<Vec<_>>())
    ///     .to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "a b".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("out").read_values_to_list().unwrap(), vec!["a", "b"]);
    /// ```
    pub fn flat_map_values<V2: Data, I, F>(&self, mapper: F) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
        F: Fn(V) -> I + Send + Sync + 'static,
    {
        self.flat_map_values_named(mapper, Named::none())
    }

    /// [`flat_map_values`](Self::flat_map_values) with a processor name.
    pub fn flat_map_values_named<V2: Data, I, F>(&self, mapper: F, named: Named) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
        F: Fn(V) -> I + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-FLATMAPVALUES-");
        let f = Arc::new(mapper);
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                for v in f(r.value) {
                    ch.forward(
                        t,
                        Record {
                            key: r.key.clone(),
                            value: v,
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        },
                    )?;
                }
                Ok(())
            }
        });
        self.derive(
            node,
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }

    /// Sets a new key computed from each record. Marks the stream for repartitioning.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").select_key(|_, v| v.to_uppercase()).to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "eu".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("out").read_key_value().unwrap(), Some(("EU".into(), "eu".into())));
    /// ```
    pub fn select_key<K2: Data, F>(&self, selector: F) -> KStream<K2, V>
    where
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        self.select_key_named(selector, Named::none())
    }

    /// [`select_key`](Self::select_key) with a processor name.
    pub fn select_key_named<K2: Data, F>(&self, selector: F, named: Named) -> KStream<K2, V>
    where
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-KEY-SELECT-");
        let f = Arc::new(selector);
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                let k = f(&r.key, &r.value);
                ch.forward(t, r.with_key(k))
            }
        });
        self.derive(node, None, self.value_serde.clone(), true)
    }

    /// Calls `action` on each record and passes it on unchanged.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let s = seen.clone();
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").peek(move |_, _| { s.fetch_add(1, Ordering::Relaxed); }).to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "v".into()).unwrap();
    /// assert_eq!(seen.load(Ordering::Relaxed), 1);
    /// assert_eq!(driver.output_topic::<String, String>("out").read_value().unwrap(), Some("v".into()));
    /// ```
    pub fn peek<F>(&self, action: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        self.peek_named(action, Named::none())
    }

    /// [`peek`](Self::peek) with a processor name.
    pub fn peek_named<F>(&self, action: F, named: Named) -> KStream<K, V>
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-PEEK-");
        let f = Arc::new(action);
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                f(&r.key, &r.value);
                ch.forward(t, r)
            }
        });
        self.derive(
            node,
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// Calls `action` on each record; a terminal operation.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use std::sync::{Arc, Mutex};
    /// let got = Arc::new(Mutex::new(Vec::new()));
    /// let g = got.clone();
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in").foreach(move |k, v| g.lock().unwrap().push(format!("{k}={v}")));
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "v".into()).unwrap();
    /// assert_eq!(*got.lock().unwrap(), vec!["k=v"]);
    /// ```
    pub fn foreach<F>(&self, action: F)
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        self.foreach_named(action, Named::none())
    }

    /// [`foreach`](Self::foreach) with a processor name.
    pub fn foreach_named<F>(&self, action: F, named: Named)
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-FOREACH-");
        let f = Arc::new(action);
        add_fn_node::<K, V, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, V>, _: &Children, _: &mut TaskContext| {
                f(&r.key, &r.value);
                Ok(())
            }
        });
    }

    /// Splits the stream into branches: each record goes to the first branch whose predicate
    /// holds; the optional default branch takes the rest, and records matching no branch are
    /// dropped otherwise.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let mut branches = builder.stream::<String, i64>("in")
    ///     .split(Named::as_("size-"))
    ///     .branch(|_, v| *v > 100, Branched::as_("big"))
    ///     .branch(|_, v| *v > 10, Branched::as_("medium"))
    ///     .default_branch(Branched::as_("small"));
    /// branches.take("size-big").unwrap().to("big");
    /// branches.take("size-medium").unwrap().to("medium");
    /// branches.take("size-small").unwrap().to("small");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, i64>("in");
    /// for v in [500, 50, 5] { input.pipe_input("k".into(), v).unwrap(); }
    /// assert_eq!(driver.output_topic::<String, i64>("big").read_values_to_list().unwrap(), vec![500]);
    /// assert_eq!(driver.output_topic::<String, i64>("medium").read_values_to_list().unwrap(), vec![50]);
    /// assert_eq!(driver.output_topic::<String, i64>("small").read_values_to_list().unwrap(), vec![5]);
    /// ```
    pub fn split(&self, named: Named) -> BranchedKStream<K, V> {
        let split_name = name(&self.b, &named, "KSTREAM-BRANCH-");
        BranchedKStream {
            stream: self.clone(),
            prefix: named.name.unwrap_or_else(|| split_name.clone()),
            split_name,
            branches: Vec::new(),
        }
    }

    /// The union of this stream and `other`. Order is kept per input partition only.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, String>("a");
    /// let b = builder.stream::<String, String>("b");
    /// a.merge(&b).to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("a").pipe_input("k".into(), "1".into()).unwrap();
    /// driver.input_topic::<String, String>("b").pipe_input("k".into(), "2".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("out").read_values_to_list().unwrap(), vec!["1", "2"]);
    /// ```
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        self.merge_named(other, Named::none())
    }

    /// [`merge`](Self::merge) with a processor name.
    pub fn merge_named(&self, other: &KStream<K, V>, named: Named) -> KStream<K, V> {
        let name = name(&self.b, &named, "KSTREAM-MERGE-");
        let node = add_fn_node::<K, V, _, _>(&self.b, name, &[self.node, other.node], || {
            |r: Record<K, V>, ch: &Children, t: &mut TaskContext| ch.forward(t, r)
        });
        self.derive(
            node,
            self.key_serde.clone().or(other.key_serde.clone()),
            self.value_serde.clone().or(other.value_serde.clone()),
            self.repartition_required || other.repartition_required,
        )
    }

    /// Writes the stream to `topic` with the default serdes (or those the stream carries).
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let (ks, vs) = self.serdes_or_default();
        let p = Produced::with(ks, vs);
        self.to_with(topic, p);
    }

    /// Writes the stream to `topic` with explicit options.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::serde::JsonSerde;
    /// # use std::sync::Arc;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in")
    ///     .to_with("out", Produced::with(default_serde(), Arc::new(JsonSerde::<i64>::new())).with_name("json-sink"));
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, i64>("in").pipe_input("k".into(), 7).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("out").read_value().unwrap(), Some("7".into()));
    /// ```
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        let name = self
            .b
            .borrow_mut()
            .name_or(produced.name.as_deref(), "KSTREAM-SINK-");
        let (ks, vs) = self.require_serdes(&name, produced.key_serde, produced.value_serde);
        add_sink(
            &self.b,
            name,
            self.node,
            TopicName::External(topic.to_string()),
            ks,
            vs,
        );
    }

    /// Writes each record to the topic that `extractor` chooses for it.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in")
    ///     .to_dynamic(|_, v, _| format!("events-{v}"), Produced::new());
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "eu".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("events-eu").read_value().unwrap(), Some("eu".into()));
    /// ```
    pub fn to_dynamic<F>(&self, extractor: F, produced: Produced<K, V>)
    where
        F: Fn(&K, &V, &RecordContext) -> String + Send + Sync + 'static,
    {
        let name = self
            .b
            .borrow_mut()
            .name_or(produced.name.as_deref(), "KSTREAM-SINK-");
        let (ks, vs) = self.require_serdes(&name, produced.key_serde, produced.value_serde);
        add_dynamic_sink(&self.b, name, self.node, Arc::new(extractor), ks, vs);
    }

    /// Sends the stream through a repartition topic so that it is partitioned by its current
    /// key, with the default serdes.
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let (ks, vs) = self.serdes_or_default();
        self.repartition_with(Repartitioned::with(ks, vs))
    }

    /// Sends the stream through a repartition topic `<application.id>-<name>-repartition`.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in")
    ///     .select_key(|_, v| v.clone())
    ///     .repartition_with(Repartitioned::as_("by-value").with_number_of_partitions(2)
    ///         .with_key_serde(default_serde()).with_value_serde(default_serde()))
    ///     .to("out");
    /// let text = builder.build().unwrap().describe().to_string();
    /// assert!(text.contains("by-value-repartition"));
    /// ```
    pub fn repartition_with(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let named = repartitioned.name.is_some();
        let base = self
            .b
            .borrow_mut()
            .name_or(repartitioned.name.as_deref(), "KSTREAM-REPARTITION-");
        let (ks, vs) =
            self.require_serdes(&base, repartitioned.key_serde, repartitioned.value_serde);
        let source = repartition_through(
            &self.b,
            self.node,
            &base,
            named,
            ks.clone(),
            vs.clone(),
            repartitioned.partitions,
        );
        self.derive(source, Some(ks), Some(vs), false)
    }

    /// Runs a hand-written [`Processor`] on each record; `supplier` makes one per task, and
    /// `stores` names the stores it may open. The result is marked for repartitioning (the
    /// processor may change keys). See [`crate::processor`] for a full example.
    pub fn process<KOut: Data, VOut: Data, P, S>(
        &self,
        supplier: S,
        named: Named,
        stores: &[&str],
    ) -> KStream<KOut, VOut>
    where
        P: Processor<K, V, KOut, VOut>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        let name = name(&self.b, &named, "KSTREAM-PROCESSOR-");
        let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
            Ok(NodeBox::typed::<K, V, _>(ProcessorNode::new(
                supplier(),
                NodeInfo {
                    idx: nb.idx,
                    name: nb.name,
                    children: nb.children,
                    stores: nb.stores,
                },
            )))
        });
        let node = {
            let mut ib = self.b.borrow_mut();
            let node = ib.add_node(name, NodeKind::Processor, &[self.node], factory);
            for s in stores {
                ib.connect_store(node, s);
            }
            node
        };
        self.derive(node, None, None, true)
    }

    /// Turns the stream into a table (each record upserts its key), materialized with the
    /// default serdes.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("in").to_table().filter(|_, v| *v > 0).to_stream().to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, i64>("in");
    /// input.pipe_input("a".into(), 1).unwrap();
    /// input.pipe_input("a".into(), -1).unwrap();
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("out").read_values_to_list().unwrap(), vec![Some(1), None]);
    /// ```
    pub fn to_table(&self) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let (ks, vs) = self.serdes_or_default();
        self.to_table_with(Named::none(), Materialized::with(ks, vs))
    }

    /// Turns the stream into a table with explicit options.
    pub fn to_table_with(
        &self,
        named: Named,
        mut materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let op = named
            .name
            .clone()
            .unwrap_or_else(|| "KStream::to_table".to_string());
        let (ks, vs) = self.require_serdes(
            &op,
            materialized.key_serde.clone(),
            materialized.value_serde.clone(),
        );
        // Kafka's `KStreamImpl#toTable`: the node's name first, then the store's
        // (`KSTREAM-TOTABLE-STATE-STORE-n` when not named); a key change repartitions
        // through `<node name>-repartition` behind a null-key filter. A table whose store
        // is not named is not materialized until an operator reads it.
        let name = self
            .b
            .borrow_mut()
            .name_or(named.name.as_deref(), "KSTREAM-TOTABLE-");
        let unnamed = materialized.name.is_none() && materialized.supplier.is_none();
        if materialized.name.is_none() {
            let store = self.b.borrow_mut().generate("KSTREAM-TOTABLE-STATE-STORE-");
            materialized.name = Some(store);
        }
        let mut parent = self.node;
        if self.repartition_required {
            parent = filtered_repartition(&self.b, parent, &name, ks.clone(), vs.clone());
        }
        if unnamed {
            return add_unmaterialized_table::<K, V, V>(
                &self.b,
                parent,
                Some(&name),
                materialized,
                (ks, vs),
                Some,
            );
        }
        let (node, store) = add_table_source_node::<K, V, V>(
            &self.b,
            parent,
            Some(&name),
            materialized,
            ks.clone(),
            vs.clone(),
            Some,
            true,
        );
        KTable::new(self.b.clone(), node, Some(ks), Some(vs), Some(store))
    }

    /// Groups by the current key, for aggregations, with the default serdes (or those the
    /// stream carries). Repartitions first if the key was changed upstream.
    pub fn group_by_key(&self) -> KGroupedStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let (ks, vs) = self.serdes_or_default();
        self.group_by_key_with(Grouped::with(ks, vs))
    }

    /// Groups by the current key with explicit options.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("in")
    ///     .map_values(|v| v.len())           // usize has no default serde...
    ///     .group_by_key_with(Grouped::new())  // ...and needs none: no repartition here
    ///     .count()
    ///     .to_stream()
    ///     .to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("in").pipe_input("k".into(), "v".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("out").read_value().unwrap(), Some(Some(1)));
    /// ```
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(
            self.clone(),
            grouped.name,
            grouped.key_serde.or(self.key_serde.clone()),
            grouped.value_serde.or(self.value_serde.clone()),
            self.repartition_required,
        )
    }

    /// Groups by a new key computed from each record (always repartitions), with the
    /// default serdes.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("page-views")       // user -> page
    ///     .group_by(|_user, page| page.clone())
    ///     .count()
    ///     .to_stream()
    ///     .to("views-per-page");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, String>("page-views");
    /// input.pipe_input("u1".into(), "/home".into()).unwrap();
    /// input.pipe_input("u2".into(), "/home".into()).unwrap();
    /// let counts = driver.output_topic::<String, Option<i64>>("views-per-page").read_key_values_to_map().unwrap();
    /// assert_eq!(counts["/home"], Some(2));
    /// ```
    pub fn group_by<K2: Data + DefaultSerde, F>(&self, selector: F) -> KGroupedStream<K2, V>
    where
        V: DefaultSerde,
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        let vs = self.value_serde.clone().unwrap_or_else(V::default_serde);
        self.group_by_with(selector, Grouped::with(K2::default_serde(), vs))
    }

    /// Groups by a new key with explicit options.
    pub fn group_by_with<K2: Data, F>(
        &self,
        selector: F,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V>
    where
        F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
    {
        // Kafka names the key selector after the grouping when it has a name.
        let named = grouped.name.as_deref().map_or_else(Named::none, Named::as_);
        let keyed = self.select_key_named(selector, named);
        KGroupedStream::new(
            keyed,
            grouped.name,
            grouped.key_serde,
            grouped.value_serde.or(self.value_serde.clone()),
            true,
        )
    }
}

/// Inserts a sink to and a source from `<base>-repartition`; returns the source's index.
pub(crate) fn repartition_through<K: Data, V: Data>(
    b: &Shared,
    parent: usize,
    base: &str,
    named: bool,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    partitions: Option<u32>,
) -> usize {
    let names = if named {
        (
            format!("{base}-repartition-sink"),
            format!("{base}-repartition-source"),
        )
    } else {
        let mut ib = b.borrow_mut();
        (ib.generate("KSTREAM-SINK-"), ib.generate("KSTREAM-SOURCE-"))
    };
    repartition_through_as(b, parent, base, names, (ks, vs), partitions)
}

/// The node names of a repartition with a null-key filter, as Kafka's
/// `KStreamImpl#createRepartitionedSource` gives them: it always generates a sink, a filter
/// and a source name, in that order (burning the counter), and uses them when `base` is a
/// generated name (`KSTREAM…-0000000000`); otherwise the nodes are `<base>-repartition-sink`,
/// `-filter` and `-source` (a `Grouped` name, a store name given in `Materialized`, a
/// cogroup's `COGROUPKSTREAM-…` store).
struct RepartitionNames {
    sink: String,
    filter: String,
    source: String,
}

fn repartition_names(b: &Shared, base: &str) -> RepartitionNames {
    let mut ib = b.borrow_mut();
    let generated = RepartitionNames {
        sink: ib.generate("KSTREAM-SINK-"),
        filter: ib.generate("KSTREAM-FILTER-"),
        source: ib.generate("KSTREAM-SOURCE-"),
    };
    let digits = base.rsplit('-').next().unwrap_or("");
    if base.starts_with("KSTREAM")
        && digits.len() == 10
        && digits.bytes().all(|c| c.is_ascii_digit())
    {
        return generated;
    }
    RepartitionNames {
        sink: format!("{base}-repartition-sink"),
        filter: format!("{base}-repartition-filter"),
        source: format!("{base}-repartition-source"),
    }
}

/// A repartition through `<base>-repartition` behind a filter that drops (and counts)
/// records with a null key, named by [`repartition_names`]: Kafka's
/// `createRepartitionedSource`, used before stream aggregations and stream-stream joins.
/// Returns the source's index.
pub(crate) fn filtered_repartition<K: Data, V: Data>(
    b: &Shared,
    parent: usize,
    base: &str,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> usize {
    let names = repartition_names(b, base);
    let key_serde = ks.clone();
    let filter = add_fn_node::<K, V, _, _>(b, names.filter, &[parent], move || {
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
    let node_names = (names.sink, names.source);
    repartition_through_as(b, filter, base, node_names, (ks, vs), None)
}

/// [`repartition_through`] with the sink's and the source's names given.
fn repartition_through_as<K: Data, V: Data>(
    b: &Shared,
    parent: usize,
    base: &str,
    (sink_name, source_name): (String, String),
    (ks, vs): (SerdeRef<K>, SerdeRef<V>),
    partitions: Option<u32>,
) -> usize {
    let topic = TopicName::Internal(format!("{base}-repartition"));
    b.borrow_mut()
        .add_repartition_topic(topic.clone(), partitions);
    add_sink(b, sink_name, parent, topic.clone(), ks.clone(), vs.clone());
    add_source(
        b,
        source_name,
        vec![topic],
        ks,
        vs,
        Some(Arc::new(RecordTimestamp)),
        Some(crate::time::InvalidTimestampPolicy::Fail),
    )
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A stream being split into branches; see [`KStream::split`].
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    split_name: String,
    prefix: String,
    branches: Vec<(String, Predicate<K, V>)>,
}

debug_fields!(BranchedKStream<K, V>, s => { "split": s.split_name, "branches": s.branches.len() });

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// Adds a branch for records matching `predicate` (and no earlier branch). Its name is
    /// the split's name followed by the branch's name, or by its 1-based position.
    pub fn branch<F>(mut self, predicate: F, branched: Branched) -> Self
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let suffix = branched
            .name
            .unwrap_or_else(|| (self.branches.len() + 1).to_string());
        self.branches
            .push((format!("{}{}", self.prefix, suffix), Arc::new(predicate)));
        self
    }

    /// Ends the split with a default branch for records that matched no branch (named with
    /// the split's name followed by the branch's name, or `0`).
    pub fn default_branch(self, branched: Branched) -> Branches<K, V> {
        let suffix = branched.name.unwrap_or_else(|| "0".to_string());
        let name = format!("{}{}", self.prefix, suffix);
        self.finish(Some(name))
    }

    /// Ends the split without a default branch: records matching no branch are dropped.
    pub fn no_default_branch(self) -> Branches<K, V> {
        self.finish(None)
    }

    fn finish(self, default: Option<String>) -> Branches<K, V> {
        let b = self.stream.b.clone();
        let preds: Vec<Predicate<K, V>> = self.branches.iter().map(|(_, p)| p.clone()).collect();
        let n_branches = preds.len();
        let preds = Arc::new(preds);
        let has_default = default.is_some();
        // The split node forwards to child i (the i-th branch's pass-through node).
        let split = add_fn_node::<K, V, _, _>(
            &b,
            self.split_name.clone(),
            &[self.stream.node],
            move || {
                let preds = preds.clone();
                move |r: Record<K, V>, ch: &Children, t: &mut TaskContext| {
                    let target = preds
                        .iter()
                        .position(|p| p(&r.key, &r.value))
                        .or(if has_default { Some(n_branches) } else { None });
                    match target {
                        Some(i) => ch.forward_nth(t, i, r),
                        None => Ok(()),
                    }
                }
            },
        );
        let mut out = BTreeMap::new();
        let names = self.branches.into_iter().map(|(n, _)| n).chain(default);
        for branch_name in names {
            let node = add_fn_node::<K, V, _, _>(&b, branch_name.clone(), &[split], || {
                |r: Record<K, V>, ch: &Children, t: &mut TaskContext| ch.forward(t, r)
            });
            out.insert(
                branch_name,
                self.stream.derive(
                    node,
                    self.stream.key_serde.clone(),
                    self.stream.value_serde.clone(),
                    self.stream.repartition_required,
                ),
            );
        }
        Branches { streams: out }
    }
}

/// The branches of a split stream, by name.
pub struct Branches<K, V> {
    streams: BTreeMap<String, KStream<K, V>>,
}

impl<K, V> std::fmt::Debug for Branches<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.streams.keys()).finish()
    }
}

impl<K, V> Branches<K, V> {
    /// Takes the branch called `name` out of the result.
    pub fn take(&mut self, name: &str) -> Option<KStream<K, V>> {
        self.streams.remove(name)
    }
    /// The names of the branches not yet taken.
    pub fn names(&self) -> Vec<&str> {
        self.streams.keys().map(String::as_str).collect()
    }
}
