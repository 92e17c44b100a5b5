//! Joins with tables: stream-table (`KStreamKTableJoin`: only the stream side triggers, the
//! table is looked up) and table-table (`KTableKTableJoin`: both sides trigger, each looks
//! the other up, and results carry old and new values).

use std::sync::Arc;

use crate::Data;
use crate::error::Result;
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::{Change, Record};
use crate::serde::{DefaultSerde, SerdeRef};

use super::builder::{Shared, TsHandle, add_fn_node, add_store_node, add_table_source_node};
use super::join::copartitioned;
use super::join_methods::{inner_joiner, join_methods, left_joiner, outer_joiner};
use super::options::{Joined, Materialized, Named};
use super::{KStream, KTable};
use crate::internals::stream_join::{JoinFn, JoinKind};
use crate::internals::versioned::{History, value_as_of};

impl<K: Data, V: Data> KTable<K, V> {
    /// The node and store holding this table's current values: its own store, or a new one
    /// fed by its changes (for tables derived without one, such as `filter` results).
    pub(crate) fn materialized_view(&self) -> (usize, String) {
        self.materialize_on_demand();
        if let Some(store) = &self.store {
            return (self.node, store.clone());
        }
        let vs = super::builder::require_serde(
            &self.b,
            "KTABLE-MATERIALIZE",
            "value",
            self.value_serde.clone(),
            None,
        );
        let ks = super::builder::require_serde(
            &self.b,
            "KTABLE-MATERIALIZE",
            "key",
            self.key_serde.clone(),
            None,
        );
        add_table_source_node::<K, Change<V>, V>(
            &self.b,
            self.node,
            None,
            Materialized::new().with_caching_disabled(),
            ks,
            vs,
            |c| c.new,
            false,
        )
    }
}

/// Adds the stream-table join node: each stream record looks its key up in the table.
fn stream_table_join<K: Data, V: Data, VT: Data, VR: Data>(
    stream: &KStream<K, V>,
    table: &KTable<K, VT>,
    joiner: JoinFn<K, V, VT, VR>,
    joined: Joined<K, V, VT>,
    kind: JoinKind,
) -> KStream<K, VR> {
    let left = kind == JoinKind::Left;
    let b: Shared = stream.b.clone();
    let name = joined.name.clone();
    let op = name
        .clone()
        .unwrap_or_else(|| "KSTREAM-JOIN (stream-table)".into());
    let ks = super::builder::require_serde(
        &b,
        &op,
        "key",
        joined.key_serde.clone(),
        stream.key_serde.clone().or(table.key_serde.clone()),
    );
    let vs = super::builder::require_serde(
        &b,
        &op,
        "value",
        joined.value_serde.clone(),
        stream.value_serde.clone(),
    );
    let stream_in = copartitioned(
        &b,
        stream.node,
        stream.repartition_required,
        name.as_deref(),
        None,
        &ks,
        &vs,
    );
    let (table_node, store) = table.materialized_view();
    let node_name = b.borrow_mut().name_or(
        name.as_deref(),
        if left {
            "KSTREAM-LEFTJOIN-"
        } else {
            "KSTREAM-JOIN-"
        },
    );
    if let Some(grace) = joined.grace {
        let node = match &table.history {
            Some(history) => super::versioned::add_grace_join(
                &b,
                &node_name,
                stream_in,
                history,
                grace,
                left,
                joiner,
                ks.clone(),
                vs,
            ),
            None => {
                b.borrow_mut()
                    .error(crate::error::TopologyError::InvalidOption {
                        operator: node_name.clone(),
                        detail: "a grace period needs a versioned table \
                                 (Materialized::as_versioned)"
                            .into(),
                    });
                stream_in
            }
        };
        b.borrow_mut()
            .copartition(&node_name, &[stream_in, table_node]);
        return KStream::new(b, node, Some(ks), None, false);
    }
    let node = match &table.history {
        // Kafka's `KStreamKTableJoinProcessor` on a versioned table: each stream record
        // joins the version valid at its timestamp (`get(key, asOf)`), not the latest.
        Some(history) => add_store_node::<K, V, History<K, VT>, _, _>(
            &b,
            node_name.clone(),
            &[stream_in],
            history,
            None,
            lookup_join(joiner, ks.clone(), vs, left, |h: &History<K, VT>, r| {
                value_as_of(h, &r.key, r.timestamp)
            }),
        ),
        None => add_store_node::<K, V, TsHandle<K, VT>, _, _>(
            &b,
            node_name.clone(),
            &[stream_in],
            &store,
            None,
            lookup_join(joiner, ks.clone(), vs, left, |s: &TsHandle<K, VT>, r| {
                Ok(s.get(&r.key)?.map(|v| v.value))
            }),
        ),
    };
    b.borrow_mut()
        .copartition(&node_name, &[stream_in, table_node]);
    KStream::new(b, node, Some(ks), None, false)
}

/// A stream-table join's per-record step on the table's handle `S`.
type LookupStep<S, K, V> =
    Box<dyn FnMut(&S, Record<K, V>, &Children, &mut TaskContext) -> Result<()> + Send>;

/// The per-task process function of a stream-table join that finds the table value of a
/// record with `lookup` (the latest value, or a versioned table's value at the record's
/// time), with KIP-962's null rules.
fn lookup_join<K: Data, V: Data, VT: Data, VR: Data, S: 'static>(
    joiner: JoinFn<K, V, VT, VR>,
    null_keys: SerdeRef<K>,
    null_values: SerdeRef<V>,
    left: bool,
    lookup: fn(&S, &Record<K, V>) -> Result<Option<VT>>,
) -> impl Fn() -> LookupStep<S, K, V> + Send + Sync + 'static {
    move || {
        let joiner = joiner.clone();
        let (null_keys, null_values) = (null_keys.clone(), null_values.clone());
        Box::new(
            move |store: &S, r: Record<K, V>, ch: &Children, t: &mut TaskContext| -> Result<()> {
                let null_key = null_keys.is_null(&r.key);
                let null_value = null_values.is_null(&r.value);
                if left && null_key && !null_value {
                    // KIP-962: a left join passes a null-key record on, unjoined.
                    let out = joiner(&r.key, Some(&r.value), None);
                    return ch.forward(t, r.with_value(out));
                }
                if null_key || null_value {
                    t.metrics.dropped_records += 1;
                    return Ok(());
                }
                let other = lookup(store, &r)?;
                if left || other.is_some() {
                    let out = joiner(&r.key, Some(&r.value), other.as_ref());
                    ch.forward(t, r.with_value(out))?;
                }
                Ok(())
            },
        )
    }
}

fn joined_defaults<K: Data + DefaultSerde, V: Data + DefaultSerde, VT: Data>(
    stream: &KStream<K, V>,
    table: &KTable<K, VT>,
) -> Joined<K, V, VT> {
    let mut j = Joined::new()
        .with_key_serde(
            stream
                .key_serde
                .clone()
                .or(table.key_serde.clone())
                .unwrap_or_else(K::default_serde),
        )
        .with_value_serde(stream.value_serde.clone().unwrap_or_else(V::default_serde));
    if let Some(s) = table.value_serde.clone() {
        j = j.with_other_value_serde(s);
    }
    j
}

join_methods! {
    /// Stream-table joins (Kafka's `KStream#join(KTable)`, named `join_table` here because Rust
    /// has no overloading). Only stream records trigger: each looks up the table's current value
    /// for its key (the table's updates alone emit nothing); the result keeps the stream
    /// record's timestamp. Records with a null key or value are dropped (a left join passes a
    /// null-key record on, with no table value). The stream is repartitioned first if its key
    /// was changed; the stream's and the table's topics must have the same partition count.
    table: &KTable<K, VT>, where [VT: Data];
    args [], options Joined, defaults joined_defaults;
    join stream_table_join;
    /// Inner join with a table: records whose key is in the table, joined with its value.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");         // user -> country
    /// builder.stream::<String, String>("views")                      // user -> page
    ///     .join_table(&users, |page, country| format!("{page}@{country}"))
    ///     .to("views-by-country");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let views = driver.input_topic::<String, String>("views");
    /// views.pipe_input("u1".into(), "/a".into()).unwrap(); // no user yet: nothing
    /// driver.input_topic::<String, Option<String>>("users").pipe_input("u1".into(), Some("fr".into())).unwrap();
    /// views.pipe_input("u1".into(), "/b".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("views-by-country").read_values_to_list().unwrap(), vec!["/b@fr"]);
    /// ```
    Inner: join_table, join_table_with, join_table_with_key, (&V, &VT), inner_joiner;
    /// Left join with a table: every record, joined with the table's value for its key or
    /// with `None`.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    /// builder.stream::<String, String>("views")
    ///     .left_join_table(&users, |page, country| format!("{page}@{}", country.map_or("?", |c| c.as_str())))
    ///     .to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("views").pipe_input("u1".into(), "/a".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("out").read_values_to_list().unwrap(), vec!["/a@?"]);
    /// ```
    Left: left_join_table, left_join_table_with, left_join_table_with_key, (&V, Option<&VT>), left_joiner;
}

/// One side of a table-table join (Kafka's `KTableKTable{Inner,Left,Right,Outer}Join`
/// processors): a change of this table joined with the other table's current value. A
/// result exists when both values do, when only this side's does and `this_outer`, or when
/// only the other's does and `other_outer`; the change carries the old result too. Nothing
/// is forwarded when the other value is missing and this side cannot stand alone (or its
/// change is empty).
fn add_table_side<K: Data, VT: Data, VO: Data, VR: Data>(
    b: &Shared,
    name: String,
    parent: usize,
    other_store: &str,
    (this_outer, other_outer): (bool, bool),
    joiner: JoinFn<K, VT, VO, VR>,
) -> usize {
    add_store_node::<K, Change<VT>, TsHandle<K, VO>, _, _>(
        b,
        name,
        &[parent],
        other_store,
        None,
        move || {
            let j = joiner.clone();
            move |other: &TsHandle<K, VO>,
                  r: Record<K, Change<VT>>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> {
                if other.is_null_key(&r.key) {
                    t.metrics.dropped_records += 1;
                    return Ok(());
                }
                let o = other.get(&r.key)?;
                let ts = o
                    .as_ref()
                    .map_or(r.timestamp, |o| o.timestamp.max(r.timestamp));
                let o = o.map(|o| o.value);
                let (new, old) = (r.value.new.as_ref(), r.value.old.as_ref());
                if o.is_none() && (!this_outer || (new.is_none() && old.is_none())) {
                    return Ok(());
                }
                let join = |v: Option<&VT>| -> Option<VR> {
                    match (v, o.as_ref()) {
                        (Some(_), Some(_)) => Some(j(&r.key, v, o.as_ref())),
                        (Some(_), None) if this_outer => Some(j(&r.key, v, None)),
                        (None, Some(_)) if other_outer => Some(j(&r.key, None, o.as_ref())),
                        _ => None,
                    }
                };
                let change = Change::new(join(new), join(old));
                ch.forward(
                    t,
                    Record {
                        key: r.key,
                        value: change,
                        timestamp: ts,
                        headers: r.headers,
                    },
                )
            }
        },
    )
}

/// Adds a table-table join; returns the joined table (materialized when `materialized` is
/// given).
fn table_table_join<K: Data, VL: Data, VR: Data, VO: Data>(
    left: &KTable<K, VL>,
    right: &KTable<K, VR>,
    joiner: JoinFn<K, VL, VR, VO>,
    kind: JoinKind,
    named: Named,
    materialized: Option<Materialized<K, VO>>,
) -> KTable<K, VO> {
    let b = left.b.clone();
    let (left_node, left_store) = left.materialized_view();
    let (right_node, right_store) = right.materialized_view();
    // Kafka's `KTableImpl#doJoin` names the merge node first, then the two sides, with the
    // same prefixes whatever the kind of join.
    let (this_name, other_name, merge_name) = {
        let mut ib = b.borrow_mut();
        match &named.name {
            Some(n) => (
                format!("{n}-join-this"),
                format!("{n}-join-other"),
                n.clone(),
            ),
            None => {
                let merge = ib.generate("KTABLE-MERGE-");
                let this = ib.generate("KTABLE-JOINTHIS-");
                (this, ib.generate("KTABLE-JOINOTHER-"), merge)
            }
        }
    };
    let ks = left.key_serde.clone().or(right.key_serde.clone());

    // Each side: its changes joined with the other table's current value.
    let (left_outer, right_outer) = match kind {
        JoinKind::Inner => (false, false),
        JoinKind::Left => (true, false),
        JoinKind::Outer => (true, true),
    };
    let j = joiner.clone();
    let this = add_table_side::<K, VL, VR, VO>(
        &b,
        this_name,
        left_node,
        &right_store,
        (left_outer, right_outer),
        Arc::new(move |k, l, r| j(k, l, r)),
    );
    let j = joiner;
    let other = add_table_side::<K, VR, VL, VO>(
        &b,
        other_name,
        right_node,
        &left_store,
        (right_outer, left_outer),
        Arc::new(move |k, r, l| j(k, l, r)),
    );
    b.borrow_mut()
        .copartition(&merge_name, &[left_node, right_node]);
    match materialized {
        None => {
            let node = add_fn_node::<K, Change<VO>, _, _>(&b, merge_name, &[this, other], || {
                |r: Record<K, Change<VO>>, ch: &Children, t: &mut TaskContext| ch.forward(t, r)
            });
            KTable::new(b, node, ks, None, None)
        }
        Some(m) => {
            let vs = super::builder::require_serde(
                &b,
                &merge_name,
                "value",
                m.value_serde.clone(),
                None,
            );
            let ks = super::builder::require_serde(&b, &merge_name, "key", m.key_serde.clone(), ks);
            let merge = add_fn_node::<K, Change<VO>, _, _>(&b, merge_name, &[this, other], || {
                |r: Record<K, Change<VO>>, ch: &Children, t: &mut TaskContext| ch.forward(t, r)
            });
            let (node, store) = add_table_source_node::<K, Change<VO>, VO>(
                &b,
                merge,
                None,
                m,
                ks.clone(),
                vs.clone(),
                |c| c.new,
                false,
            );
            KTable::new(b, node, Some(ks), Some(vs), Some(store))
        }
    }
}

/// Writes each table-table join kind on `KTable<K, V>`: `$plain`, and `$with` with a
/// processor name and a store for the result (queryable by its name). The caller gives the
/// impl block's docs, then each kind's `$plain` docs.
macro_rules! table_join_methods {
    (
        $(#[$impl_doc:meta])*
        impl KTable;
        $(
            $(#[$doc:meta])*
            $kind:ident: $plain:ident, $with:ident, ($v:ty, $o:ty), $adapt:ident;
        )+
    ) => {
        $(#[$impl_doc])*
        impl<K: Data, V: Data> KTable<K, V> {
            $(
                $(#[$doc])*
                pub fn $plain<VO: Data, VR: Data, F>(&self, other: &KTable<K, VO>, joiner: F) -> KTable<K, VR>
                where F: Fn($v, $o) -> VR + Send + Sync + 'static {
                    let f = $adapt(move |_, v, o| joiner(v, o));
                    table_table_join(self, other, f, JoinKind::$kind, Named::none(), None)
                }

                #[doc = concat!("[`", stringify!($plain), "`](Self::", stringify!($plain), ") with a processor name and a store for the result (queryable by its name).")]
                pub fn $with<VO: Data, VR: Data, F>(&self, other: &KTable<K, VO>, joiner: F, named: Named, materialized: Materialized<K, VR>) -> KTable<K, VR>
                where F: Fn($v, $o) -> VR + Send + Sync + 'static {
                    let f = $adapt(move |_, v, o| joiner(v, o));
                    table_table_join(self, other, f, JoinKind::$kind, named, Some(materialized))
                }
            )+
        }
    };
}

table_join_methods! {
    /// Table-table joins (Kafka's `KTable#join`): both tables are materialized and both sides
    /// trigger; an update of either side joins the other side's current value. Results are
    /// table changes carrying the old result too (so a downstream `group_by` subtracts
    /// correctly); a result that disappears is a tombstone. The result's timestamp is the larger
    /// of the two values' timestamps. The tables' topics must have the same partition count.
    impl KTable;
    /// Inner join with another table: keys present in both.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names");
    /// let emails = builder.table::<String, String>("emails");
    /// names.join(&emails, |n, e| format!("{n} <{e}>")).to_stream().to("contacts");
    /// // Without the record cache, every update is forwarded (with it, updates of one key
    /// // within a commit interval are combined).
    /// let config = StreamsConfig::new("doc").with_cache_max_bytes(0);
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), config).unwrap();
    /// driver.input_topic::<String, Option<String>>("names").pipe_input("u1".into(), Some("Ann".into())).unwrap();
    /// driver.input_topic::<String, Option<String>>("emails").pipe_input("u1".into(), Some("a@x".into())).unwrap();
    /// driver.input_topic::<String, Option<String>>("names").pipe_input("u1".into(), None).unwrap(); // gone: tombstone
    /// assert_eq!(driver.output_topic::<String, Option<String>>("contacts").read_values_to_list().unwrap(),
    ///            vec![Some("Ann <a@x>".to_string()), None]);
    /// ```
    Inner: join, join_with, (&V, &VO), inner_joiner;
    /// Left join with another table: every key of this table, joined with the other's
    /// value or `None`.
    Left: left_join, left_join_with, (&V, Option<&VO>), left_joiner;
    /// Outer join with another table: every key of either table.
    Outer: outer_join, outer_join_with, (Option<&V>, Option<&VO>), outer_joiner;
}
