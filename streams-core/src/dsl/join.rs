//! Stream-stream joins in the DSL: [`KStream::join`] and its left and outer forms wire up
//! the join node of `internals::stream_join` (its window stores, the shared store of
//! unmatched records, the side-tagging nodes and co-partitioning).

use std::sync::Arc;

use crate::Data;
use crate::config::DslStore;
use crate::internals::node::{Children, NodeBox, NodeBuild, NodeFactory};
use crate::internals::stream_join::{
    JoinFn, JoinKind, JoinNode, JoinSpec, ListSerde, OuterKey, OuterKeySerde, Side, Unmatched,
    UnmatchedSerde,
};
use crate::internals::task::TaskContext;
use crate::record::Record;
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::{StoreBuilder, Stores};
use crate::topology::NodeKind;
use crate::window::JoinWindows;

use super::KStream;
use super::builder::{Shared, add_fn_node, require_serde};
use super::join_methods::{inner_joiner, join_methods, left_joiner, outer_joiner};
use super::kstream::filtered_repartition;
use super::options::StreamJoined;

/// The repartition step of a join input whose key was changed upstream: a null-key filter,
/// then `<name>-<side>-repartition` for a named join with a side (a stream-stream join's
/// `left` / `right`), `<name>-repartition` for a named one without (a stream-table join),
/// `<upstream node>-repartition` for an unnamed one, as in Kafka.
pub(crate) fn copartitioned<K: Data, V: Data>(
    b: &Shared,
    stream_node: usize,
    repartition_required: bool,
    join_name: Option<&str>,
    side: Option<&str>,
    ks: &SerdeRef<K>,
    vs: &SerdeRef<V>,
) -> usize {
    if !repartition_required {
        return stream_node;
    }
    // Kafka's `KStreamImpl#doJoin`: `<name>-left` / `-right`; its stream-table `join`: the
    // name itself; unnamed, the upstream node's own name (so a generated one, and the
    // repartition's nodes are generated too).
    let base = match (join_name, side) {
        (Some(n), Some(side)) => format!("{n}-{side}"),
        (Some(n), None) => n.to_string(),
        (None, _) => b.borrow().node_name(stream_node).to_string(),
    };
    filtered_repartition(b, stream_node, &base, ks.clone(), vs.clone())
}

/// A join window store (values buffered per key and timestamp) on the chosen engine.
fn add_join_window_store<K: Data, V: Data>(
    b: &Shared,
    name: &str,
    windows: JoinWindows,
    store_type: Option<DslStore>,
    logging: bool,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) {
    // One ms more than the join's retention: the join decides lateness itself (a record
    // more than before + after + grace behind is late), the store only has to keep the rest.
    let retention = windows.retention_ms().saturating_add(1);
    let size = windows.size_ms().max(1);
    let list: SerdeRef<Vec<V>> = Arc::new(ListSerde::new(vs));
    let supplier = match store_type {
        None => Ok(None),
        Some(DslStore::InMemory) => Stores::in_memory_window_store(name, retention, size).map(Some),
        Some(DslStore::RocksDb) => Stores::persistent_window_store(name, retention, size).map(Some),
    };
    let builder = match supplier {
        Ok(None) => Stores::default_window_store_builder(name, retention, size, ks, list),
        Ok(Some(s)) => Stores::window_store_builder(s, ks, list),
        Err(e) => {
            b.borrow_mut()
                .error(crate::error::TopologyError::InvalidOption {
                    operator: name.to_string(),
                    detail: e.to_string(),
                });
            return;
        }
    };
    b.borrow_mut()
        .add_store(builder.with_logging_enabled(logging).into_spec());
}

/// Adds a stream-stream join of `left` and `right` (Kafka's `KStreamImplJoin`); returns
/// the joined stream.
pub(crate) fn stream_stream_join<K: Data, VL: Data, VR: Data, VO: Data>(
    left: &KStream<K, VL>,
    right: &KStream<K, VR>,
    joiner: JoinFn<K, VL, VR, VO>,
    windows: JoinWindows,
    opts: StreamJoined<K, VL, VR>,
    kind: JoinKind,
) -> KStream<K, VO> {
    let b = left.b.clone();
    let name = opts.name.clone();
    let op = name.clone().unwrap_or_else(|| "KSTREAM-JOIN".to_string());
    if let Some(problem) = windows.problem() {
        b.borrow_mut()
            .error(crate::error::TopologyError::InvalidOption {
                operator: op.clone(),
                detail: problem,
            });
    }
    let ks = require_serde(
        &b,
        &op,
        "key",
        opts.key_serde.clone(),
        left.key_serde.clone().or(right.key_serde.clone()),
    );
    let ls = require_serde(
        &b,
        &op,
        "value",
        opts.value_serde.clone(),
        left.value_serde.clone(),
    );
    let rs = require_serde(
        &b,
        &op,
        "other value",
        opts.other_value_serde.clone(),
        right.value_serde.clone(),
    );
    let left_in = copartitioned(
        &b,
        left.node,
        left.repartition_required,
        name.as_deref(),
        Some("left"),
        &ks,
        &ls,
    );
    let right_in = copartitioned(
        &b,
        right.node,
        right.repartition_required,
        name.as_deref(),
        Some("right"),
        &ks,
        &rs,
    );

    // Names as Kafka Streams generates them (the windowed nodes' numbers are used up so that
    // later generated names match Kafka's too).
    let (this_name, other_name, merge_name, this_gen) = {
        let mut ib = b.borrow_mut();
        if name.is_none() {
            ib.generate("KSTREAM-WINDOWED-");
            ib.generate("KSTREAM-WINDOWED-");
        }
        let this_gen = ib.generate(if kind == JoinKind::Outer {
            "KSTREAM-OUTERTHIS-"
        } else {
            "KSTREAM-JOINTHIS-"
        });
        let other_gen = ib.generate(if kind == JoinKind::Inner {
            "KSTREAM-JOINOTHER-"
        } else {
            "KSTREAM-OUTEROTHER-"
        });
        let this_suffix = if kind == JoinKind::Outer {
            "-outer-this-join"
        } else {
            "-this-join"
        };
        let other_suffix = if kind == JoinKind::Inner {
            "-other-join"
        } else {
            "-outer-other-join"
        };
        match &name {
            Some(n) => (
                format!("{n}{this_suffix}"),
                format!("{n}{other_suffix}"),
                format!("{n}-merge"),
                (this_gen, other_gen, this_suffix, other_suffix),
            ),
            None => {
                let merge = ib.generate("KSTREAM-MERGE-");
                (
                    this_gen.clone(),
                    other_gen.clone(),
                    merge,
                    (this_gen, other_gen, this_suffix, other_suffix),
                )
            }
        }
    };
    let (this_gen, other_gen, this_suffix, other_suffix) = this_gen;
    let (left_store, right_store) = match &opts.store_name {
        Some(s) => (
            format!("{s}{this_suffix}-store"),
            format!("{s}{other_suffix}-store"),
        ),
        None => (format!("{this_gen}-store"), format!("{other_gen}-store")),
    };
    let outer_store = (kind != JoinKind::Inner).then(|| {
        let suffix = if kind == JoinKind::Outer {
            "-outer-shared-join"
        } else {
            "-left-shared-join"
        };
        match &opts.store_name {
            Some(s) => format!("{s}{suffix}-store"),
            None => {
                let prefix = if kind == JoinKind::Outer {
                    "KSTREAM-OUTERTHIS-"
                } else {
                    "KSTREAM-JOINTHIS-"
                };
                let number = this_gen.strip_prefix(prefix).unwrap_or(&this_gen);
                format!("KSTREAM-OUTERSHARED-{number}-store")
            }
        }
    });

    add_join_window_store(
        &b,
        &left_store,
        windows,
        opts.store_type,
        opts.logging,
        ks.clone(),
        ls.clone(),
    );
    add_join_window_store(
        &b,
        &right_store,
        windows,
        opts.store_type,
        opts.logging,
        ks.clone(),
        rs.clone(),
    );
    if let Some(outer) = &outer_store {
        let key: SerdeRef<OuterKey<K>> = Arc::new(OuterKeySerde { inner: ks.clone() });
        let value: SerdeRef<Unmatched<VL, VR>> = Arc::new(UnmatchedSerde {
            left: ListSerde::new(ls.clone()),
            right: ListSerde::new(rs.clone()),
        });
        let supplier = match opts.store_type {
            None => None,
            Some(DslStore::InMemory) => Some(Stores::in_memory_key_value_store(outer)),
            Some(DslStore::RocksDb) => Some(Stores::persistent_key_value_store(outer)),
        };
        let builder = Stores::default_key_value_store_builder(outer, supplier, key, value)
            .with_logging_enabled(opts.logging);
        b.borrow_mut().add_store(builder.into_spec());
    }

    // Each input is tagged with its side and handed to the one join node of the task.
    let this = add_fn_node::<K, VL, _, _>(&b, this_name, &[left_in], || {
        |r: Record<K, VL>, ch: &Children, t: &mut TaskContext| {
            ch.forward(t, r.map_value(Side::<VL, VR>::Left))
        }
    });
    let other = add_fn_node::<K, VR, _, _>(&b, other_name, &[right_in], || {
        |r: Record<K, VR>, ch: &Children, t: &mut TaskContext| {
            ch.forward(t, r.map_value(Side::<VL, VR>::Right))
        }
    });
    let spec = Arc::new(JoinSpec {
        left_store: Arc::from(left_store.as_str()),
        right_store: Arc::from(right_store.as_str()),
        outer_store: outer_store.as_deref().map(Arc::from),
        windows,
        kind,
        joiner,
        key_serde: ks.clone(),
        left_serde: ls,
        right_serde: rs,
    });
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, Side<VL, VR>, _>(JoinNode::new(
            spec.clone(),
            nb.children,
        )))
    });
    let node = {
        let mut ib = b.borrow_mut();
        let node = ib.add_node(
            merge_name.clone(),
            NodeKind::Processor,
            &[this, other],
            factory,
        );
        ib.connect_store(node, &left_store);
        ib.connect_store(node, &right_store);
        if let Some(outer) = &outer_store {
            ib.connect_store(node, outer);
        }
        ib.copartition(&merge_name, &[left_in, right_in]);
        node
    };
    KStream::new(b, node, Some(ks), None, false)
}

fn defaults<K: Data + DefaultSerde, V: Data + DefaultSerde, VO: Data + DefaultSerde>(
    this: &KStream<K, V>,
    other: &KStream<K, VO>,
) -> StreamJoined<K, V, VO> {
    StreamJoined::with(
        this.key_serde
            .clone()
            .or(other.key_serde.clone())
            .unwrap_or_else(K::default_serde),
        this.value_serde.clone().unwrap_or_else(V::default_serde),
        other.value_serde.clone().unwrap_or_else(VO::default_serde),
    )
}

join_methods! {
    /// Stream-stream joins. A record of either side joins every record of the other side with
    /// the same key whose timestamp is within the [`JoinWindows`]; the result's timestamp is the
    /// larger of the two. Both sides are buffered in window stores for `before + after + grace`;
    /// records later than that are not buffered (and counted as dropped) but still join the
    /// other side's buffered records. Records with a null key or value are dropped (a left or
    /// outer join passes a null-key record on with no partner). Sides whose key was changed are
    /// repartitioned first; the topics joined must have the same partition count.
    other: &KStream<K, VO>, where [VO: Data + DefaultSerde];
    args [windows: JoinWindows], options StreamJoined, defaults defaults;
    join stream_stream_join;
    /// Inner join with another stream, with the default serdes (or those the streams carry).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use std::time::Duration;
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views");   // user -> page
    /// let clicks = builder.stream::<String, String>("clicks"); // user -> link
    /// views
    ///     .join(&clicks, |page, link| format!("{page}->{link}"),
    ///           JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(60)))
    ///     .to("view-clicks");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("views").pipe_input_at("u1".into(), "/home".into(), 1_000).unwrap();
    /// driver.input_topic::<String, String>("clicks").pipe_input_at("u1".into(), "buy".into(), 30_000).unwrap();
    /// driver.input_topic::<String, String>("clicks").pipe_input_at("u1".into(), "late".into(), 90_000).unwrap(); // 89 s after the view
    /// let out = driver.output_topic::<String, String>("view-clicks").read_records_to_list().unwrap();
    /// assert_eq!(out.len(), 1);
    /// assert_eq!((out[0].value.as_str(), out[0].timestamp), ("/home->buy", 30_000));
    /// ```
    Inner: join, join_with, join_with_key, (&V, &VO), inner_joiner;
    /// Left join with another stream: every record of this stream appears in the result,
    /// joined with each partner or, when its window closes without one, with `None`
    /// (never eagerly: a `None` result is emitted only once stream time passes
    /// `t + after + grace`).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use std::time::Duration;
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views");
    /// let clicks = builder.stream::<String, String>("clicks");
    /// views
    ///     .left_join(&clicks, |page, link| format!("{page}->{}", link.map_or("-", |l| l.as_str())),
    ///                JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(10)))
    ///     .to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let views_in = driver.input_topic::<String, String>("views");
    /// views_in.pipe_input_at("u1".into(), "/a".into(), 0).unwrap();
    /// views_in.pipe_input_at("u2".into(), "/b".into(), 5_000).unwrap();
    /// let out = driver.output_topic::<String, String>("out");
    /// assert!(out.is_empty()); // u1's window is still open
    /// views_in.pipe_input_at("u3".into(), "/c".into(), 10_001).unwrap(); // closes u1's window
    /// assert_eq!(out.read_values_to_list().unwrap(), vec!["/a->-"]);
    /// ```
    Left: left_join, left_join_with, left_join_with_key, (&V, Option<&VO>), left_joiner;
    /// Outer join with another stream: every record of either stream appears in the result,
    /// joined with each partner or, once its window closes without one, with `None` for the
    /// missing side.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use std::time::Duration;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, i64>("a");
    /// let b = builder.stream::<String, i64>("b");
    /// a.outer_join(&b, |x, y| (x.copied(), y.copied()),
    ///              JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100)))
    ///  .map_values(|p| format!("{p:?}"))
    ///  .to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, i64>("b").pipe_input_at("k".into(), 2, 0).unwrap();
    /// driver.input_topic::<String, i64>("a").pipe_input_at("j".into(), 1, 500).unwrap(); // closes b's window
    /// let out = driver.output_topic::<String, String>("out");
    /// assert_eq!(out.read_values_to_list().unwrap(), vec!["(None, Some(2))"]);
    /// ```
    Outer: outer_join, outer_join_with, outer_join_with_key, (Option<&V>, Option<&VO>), outer_joiner;
}
