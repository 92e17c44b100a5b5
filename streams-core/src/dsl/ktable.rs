//! [`KTable`]: a changelog stream, one current value per key.

use std::sync::Arc;

use crate::Data;
use crate::error::Result;
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::{Change, Record};
use crate::serde::{DefaultSerde, OptionSerde, Serde, SerdeError, SerdeRef};
use crate::window::Windowed;

use super::KStream;
use super::builder::{
    Shared, TsHandle, add_fn_node, add_store_node, add_ts_store, aggregation, flush_and_forward,
    require_serde, update_aggregate,
};
use super::kstream::repartition_through;
use super::options::{Grouped, Materialized, Named};
use super::table_store::OnDemandStore;

/// When a windowed table's key closes: its window's end plus how long after it the window
/// closes.
pub(crate) type ClosesAt<K> = Arc<dyn Fn(&K) -> i64 + Send + Sync>;

/// A table: for each key, its latest value. Updates flow downstream as changes (new and old
/// value); a deleted key flows as a tombstone.
pub struct KTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: usize,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) store: Option<String>,
    /// For windowed tables (aggregations and the tables derived from them with the same
    /// key): the stream time at which a key's window closes (its end plus grace, plus the
    /// gap for sessions).
    pub(crate) closes_at: Option<ClosesAt<K>>,
    /// For versioned tables: the store holding the history of values.
    pub(crate) history: Option<String>,
    /// For a table Kafka does not materialize (an unnamed source table, and the tables
    /// `filter` and `map_values` derive from it): adds its source's store once an operator
    /// reads it.
    pub(crate) on_demand: Option<OnDemandStore>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            b: self.b.clone(),
            node: self.node,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            store: self.store.clone(),
            closes_at: self.closes_at.clone(),
            history: self.history.clone(),
            on_demand: self.on_demand.clone(),
        }
    }
}

debug_fields!(KTable<K, V>, s => { "node": s.node, "store": s.store });

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Marks the table as a windowed aggregation's, whose windows close `ms` after their end.
    pub(crate) fn closing_after(mut self, ms: i64) -> Self {
        self.closes_at = Some(Arc::new(move |k: &Windowed<K>| {
            k.window.end.saturating_add(ms)
        }));
        self
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(
        b: Shared,
        node: usize,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        store: Option<String>,
    ) -> Self {
        Self {
            b,
            node,
            key_serde,
            value_serde,
            store,
            closes_at: None,
            history: None,
            on_demand: None,
        }
    }

    /// Marks this table's store as read by a downstream operator (a join's lookups, a
    /// re-grouping's or suppression's old values). Kafka materializes an unnamed source
    /// table only then (with a cache, unless its `Materialized` turns it off); until then
    /// it forwards every record as it comes, deletes of keys it never held included.
    pub(crate) fn materialize_on_demand(&self) {
        if let Some(cache) = &self.on_demand {
            cache(&self.b);
        }
    }

    /// The name of the store that holds this table, if it is materialized (queryable through
    /// the test driver or interactive queries). As in Kafka, a table whose store was not
    /// named (`builder.table(topic)`, `to_table()`) has none, even when a join made it keep
    /// one.
    pub fn queryable_store_name(&self) -> Option<&str> {
        match self.on_demand {
            Some(_) => None,
            None => self.store.as_deref(),
        }
    }

    fn change_node<V2: Data, F>(&self, prefix: &str, named: Named, f: F) -> KTable<K, V2>
    where
        F: Fn(&K, Change<V>) -> Change<V2> + Send + Sync + 'static,
    {
        let name = self.b.borrow_mut().name_or(named.name.as_deref(), prefix);
        let f = Arc::new(f);
        let node = add_fn_node::<K, Change<V>, _, _>(&self.b, name, &[self.node], move || {
            let f = f.clone();
            move |r: Record<K, Change<V>>, ch: &Children, t: &mut TaskContext| {
                let c = f(&r.key, r.value);
                ch.forward(
                    t,
                    Record {
                        key: r.key,
                        value: c,
                        timestamp: r.timestamp,
                        headers: r.headers,
                    },
                )
            }
        });
        let mut table = KTable::new(self.b.clone(), node, self.key_serde.clone(), None, None);
        table.closes_at = self.closes_at.clone();
        // Kafka's unmaterialized filter and mapValues read through to their parent's store.
        table.on_demand = self.on_demand.clone();
        table
    }

    /// Keeps the keys whose value satisfies `predicate`; a key whose new value fails it is
    /// forwarded as a tombstone (it leaves the filtered table).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("scores").filter(|_, v| *v >= 10).to_stream().to("high");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, Option<i64>>("scores");
    /// input.pipe_input("a".into(), Some(12)).unwrap();
    /// input.pipe_input("a".into(), Some(3)).unwrap();
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("high").read_values_to_list().unwrap(), vec![Some(12), None]);
    /// ```
    pub fn filter<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_named(predicate, Named::none(), false)
    }

    /// Keeps the keys whose value does not satisfy `predicate`.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("scores").filter_not(|_, v| *v >= 10).to_stream().to("low");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, Option<i64>>("scores").pipe_input("a".into(), Some(3)).unwrap();
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("low").read_values_to_list().unwrap(), vec![Some(3)]);
    /// ```
    pub fn filter_not<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_named(predicate, Named::none(), true)
    }

    /// [`filter`](Self::filter) (or `filter_not` when `negate`) with a processor name.
    pub fn filter_named<F>(&self, predicate: F, named: Named, negate: bool) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let mut t = self.change_node("KTABLE-FILTER-", named, move |k, c: Change<V>| {
            let keep = |v: Option<V>| v.filter(|v| predicate(k, v) != negate);
            Change::new(keep(c.new), keep(c.old))
        });
        t.value_serde = self.value_serde.clone();
        t
    }

    /// Transforms each value (new and old alike).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("names").map_values(|v| v.len() as i64).to_stream().to("lengths");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, Option<String>>("names").pipe_input("a".into(), Some("abc".into())).unwrap();
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("lengths").read_value().unwrap(), Some(Some(3)));
    /// ```
    pub fn map_values<V2: Data, F>(&self, mapper: F) -> KTable<K, V2>
    where
        F: Fn(V) -> V2 + Send + Sync + 'static,
    {
        self.map_values_named(mapper, Named::none())
    }

    /// [`map_values`](Self::map_values) with a processor name.
    pub fn map_values_named<V2: Data, F>(&self, mapper: F, named: Named) -> KTable<K, V2>
    where
        F: Fn(V) -> V2 + Send + Sync + 'static,
    {
        self.change_node("KTABLE-MAPVALUES-", named, move |_, c: Change<V>| {
            Change::new(c.new.map(&mapper), c.old.map(&mapper))
        })
    }

    /// The table's updates as a stream; a tombstone becomes a `None` value.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        self.to_stream_named(Named::none())
    }

    /// [`to_stream`](Self::to_stream) with a processor name.
    pub fn to_stream_named(&self, named: Named) -> KStream<K, Option<V>> {
        let name = self
            .b
            .borrow_mut()
            .name_or(named.name.as_deref(), "KTABLE-TOSTREAM-");
        let node = add_fn_node::<K, Change<V>, _, _>(&self.b, name, &[self.node], || {
            |r: Record<K, Change<V>>, ch: &Children, t: &mut TaskContext| {
                ch.forward(
                    t,
                    Record {
                        key: r.key,
                        value: r.value.new,
                        timestamp: r.timestamp,
                        headers: r.headers,
                    },
                )
            }
        });
        let vs: Option<SerdeRef<Option<V>>> = self
            .value_serde
            .clone()
            .map(|s| Arc::new(OptionSerde::new(s)) as SerdeRef<Option<V>>);
        KStream::new(self.b.clone(), node, self.key_serde.clone(), vs, false)
    }

    /// Re-groups the table by a new key for aggregation, with the default serdes. Each update
    /// subtracts the old value from its old group and adds the new value to its new group.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// // user -> region; count users per region.
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("user-regions")
    ///     .group_by(|_user, region| (region, 1i64))
    ///     .count()
    ///     .to_stream().to("users-per-region");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, Option<String>>("user-regions");
    /// input.pipe_input("alice".into(), Some("eu".into())).unwrap();
    /// input.pipe_input("alice".into(), Some("us".into())).unwrap(); // moves: eu -1, us +1
    /// let counts = driver.output_topic::<String, Option<i64>>("users-per-region").read_key_values_to_map().unwrap();
    /// assert_eq!((counts["eu"], counts["us"]), (Some(0), Some(1)));
    /// ```
    pub fn group_by<K2, V2, F>(&self, selector: F) -> KGroupedTable<K2, V2>
    where
        K2: Data + DefaultSerde + PartialEq,
        V2: Data + DefaultSerde,
        F: Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    {
        self.group_by_with(
            selector,
            Grouped::with(K2::default_serde(), V2::default_serde()),
        )
    }

    /// [`group_by`](Self::group_by) with explicit options.
    pub fn group_by_with<K2, V2, F>(
        &self,
        selector: F,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2>
    where
        K2: Data + PartialEq,
        V2: Data,
        F: Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    {
        self.materialize_on_demand();
        let name = self.b.borrow_mut().generate("KTABLE-SELECT-");
        let f = Arc::new(selector);
        // Kafka's `KTableRepartitionMap` skips a selected pair whose key or value is null.
        let (key_nulls, value_nulls) = (grouped.key_serde.clone(), grouped.value_serde.clone());
        let not_null = Arc::new(move |(k, v): &(K2, V2)| {
            !key_nulls.as_ref().is_some_and(|s| s.is_null(k))
                && !value_nulls.as_ref().is_some_and(|s| s.is_null(v))
        });
        let node = add_fn_node::<K, Change<V>, _, _>(&self.b, name, &[self.node], move || {
            let (f, not_null) = (f.clone(), not_null.clone());
            move |r: Record<K, Change<V>>, ch: &Children, t: &mut TaskContext| {
                let new = r
                    .value
                    .new
                    .map(|v| f(r.key.clone(), v))
                    .filter(|p| not_null(p));
                let old = r
                    .value
                    .old
                    .map(|v| f(r.key.clone(), v))
                    .filter(|p| not_null(p));
                let rec = |k: K2, c: Change<V2>| Record {
                    key: k,
                    value: c,
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                };
                match (new, old) {
                    (Some((nk, nv)), Some((ok, ov))) if nk == ok => {
                        ch.forward(t, rec(nk, Change::new(Some(nv), Some(ov))))
                    }
                    (new, old) => {
                        // Subtract from the old group first, then add to the new one.
                        if let Some((ok, ov)) = old {
                            ch.forward(t, rec(ok, Change::new(None, Some(ov))))?;
                        }
                        if let Some((nk, nv)) = new {
                            ch.forward(t, rec(nk, Change::new(Some(nv), None)))?;
                        }
                        Ok(())
                    }
                }
            }
        });
        KGroupedTable {
            b: self.b.clone(),
            node,
            name: grouped.name,
            key_serde: grouped.key_serde,
            value_serde: grouped.value_serde,
        }
    }
}

/// The wire format of table changes on repartition topics: a flags byte (1 = new value
/// present, 2 = old value present); when both are present a 4-byte big-endian length of the
/// new value's bytes; then the new value's bytes, then the old value's bytes.
pub struct ChangeSerde<V> {
    inner: SerdeRef<V>,
}

impl<V> ChangeSerde<V> {
    /// Wraps the value serde.
    pub fn new(inner: SerdeRef<V>) -> Self {
        Self { inner }
    }
}

impl<V> std::fmt::Debug for ChangeSerde<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeSerde")
    }
}

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize_into(&self, c: &Change<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let flags = u8::from(c.new.is_some()) | (u8::from(c.old.is_some()) << 1);
        out.push(flags);
        match (&c.new, &c.old) {
            (Some(n), Some(o)) => {
                let len_at = out.len();
                out.extend_from_slice(&[0; 4]);
                self.inner.serialize_into(n, out)?;
                let len =
                    u32::try_from(out.len() - len_at - 4).map_err(|_| SerdeError::Encode {
                        format: "change",
                        type_name: std::any::type_name::<V>(),
                        detail: "value larger than 4 GiB".into(),
                    })?;
                out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
                self.inner.serialize_into(o, out)
            }
            (Some(v), None) | (None, Some(v)) => self.inner.serialize_into(v, out),
            (None, None) => Ok(()),
        }
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Change<V>, SerdeError> {
        let bad = |detail: &str| SerdeError::Invalid {
            format: "change",
            type_name: std::any::type_name::<V>(),
            detail: detail.to_string(),
        };
        let (&flags, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
        match flags {
            0 => Ok(Change::new(None, None)),
            1 => Ok(Change::new(Some(self.inner.deserialize(rest)?), None)),
            2 => Ok(Change::new(None, Some(self.inner.deserialize(rest)?))),
            3 => {
                if rest.len() < 4 {
                    return Err(bad("truncated length"));
                }
                let (len, rest) = rest.split_at(4);
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                if rest.len() < len {
                    return Err(bad("truncated value"));
                }
                let (n, o) = rest.split_at(len);
                Ok(Change::new(
                    Some(self.inner.deserialize(n)?),
                    Some(self.inner.deserialize(o)?),
                ))
            }
            _ => Err(bad("unknown flags")),
        }
    }
}

/// The per-key step of a table aggregation: key, change, current aggregate -> new aggregate.
type TableStep<K, V, VA> = Arc<dyn Fn(&K, Change<V>, Option<VA>) -> Option<VA> + Send + Sync>;

/// A table re-grouped by a new key; only aggregations with adder and subtractor are offered.
pub struct KGroupedTable<K, V> {
    b: Shared,
    node: usize,
    name: Option<String>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V>>,
}

debug_fields!(KGroupedTable<K, V>, s => { "name": s.name });

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Counts the rows per group (the count goes down when a row leaves its group).
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::new())
    }

    /// [`count`](Self::count) into a store with explicit options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let step: TableStep<K, V, i64> = Arc::new(|_, c, agg| {
            let mut n = agg;
            if c.old.is_some() {
                n = n.map(|n| n - 1);
            }
            if c.new.is_some() {
                n = Some(n.unwrap_or(0) + 1);
            }
            n
        });
        self.aggregate_impl(
            materialized,
            Some(i64::default_serde()),
            "KTABLE-AGGREGATE-",
            step,
        )
    }

    /// Combines values per group: `adder` folds a new value in, `subtractor` takes an old
    /// one out.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// // account -> balance; total balance per bank.
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("balances")
    ///     .group_by(|account: String, balance| (account[..1].to_string(), balance))
    ///     .reduce(|a, b| a + b, |a, b| a - b)
    ///     .to_stream().to("totals");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, Option<i64>>("balances");
    /// input.pipe_input("a1".into(), Some(10)).unwrap();
    /// input.pipe_input("a2".into(), Some(5)).unwrap();
    /// input.pipe_input("a1".into(), Some(7)).unwrap();  // same group: one combined update
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("totals").read_values_to_list().unwrap(),
    ///            vec![Some(10), Some(15), Some(12)]);
    /// ```
    pub fn reduce<A, S>(&self, adder: A, subtractor: S) -> KTable<K, V>
    where
        A: Fn(V, V) -> V + Send + Sync + 'static,
        S: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.reduce_with(adder, subtractor, Materialized::new())
    }

    /// [`reduce`](Self::reduce) into a store with explicit options.
    pub fn reduce_with<A, S>(
        &self,
        adder: A,
        subtractor: S,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        A: Fn(V, V) -> V + Send + Sync + 'static,
        S: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let step: TableStep<K, V, V> = Arc::new(move |_, c, agg| {
            let mid = match (c.old, agg) {
                (Some(o), Some(a)) => Some(subtractor(a, o)),
                (_, a) => a,
            };
            match c.new {
                Some(n) => Some(match mid {
                    Some(a) => adder(a, n),
                    None => n,
                }),
                None => mid,
            }
        });
        let vs = self.value_serde.clone();
        self.aggregate_impl(materialized, vs, "KTABLE-REDUCE-", step)
    }

    /// Folds values per group into an aggregate starting at `initializer()`: `adder` for new
    /// values, `subtractor` for old ones.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("user-regions")
    ///     .group_by(|user: String, region| (region, user))
    ///     .aggregate(|| 0i64, |_, _, n| n + 1, |_, _, n| n - 1)
    ///     .to_stream().to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let input = driver.input_topic::<String, Option<String>>("user-regions");
    /// input.pipe_input("u1".into(), Some("eu".into())).unwrap();
    /// input.pipe_input("u1".into(), None).unwrap(); // tombstone: only subtracts
    /// assert_eq!(driver.output_topic::<String, Option<i64>>("out").read_values_to_list().unwrap(), vec![Some(1), Some(0)]);
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde, I, A, S>(
        &self,
        initializer: I,
        adder: A,
        subtractor: S,
    ) -> KTable<K, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        S: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        self.aggregate_with(
            initializer,
            adder,
            subtractor,
            Materialized::with_value(VA::default_serde()),
        )
    }

    /// [`aggregate`](Self::aggregate) into a store with explicit options.
    pub fn aggregate_with<VA: Data, I, A, S>(
        &self,
        initializer: I,
        adder: A,
        subtractor: S,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        S: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        let step: TableStep<K, V, VA> = Arc::new(move |k, c, agg| {
            let mid = match (c.old, agg) {
                (Some(o), Some(a)) => Some(subtractor(k, o, a)),
                (_, a) => a,
            };
            match c.new {
                Some(n) => Some(adder(k, n, mid.unwrap_or_else(&initializer))),
                None => mid,
            }
        });
        self.aggregate_impl(materialized, None, "KTABLE-AGGREGATE-", step)
    }

    fn aggregate_impl<VA: Data>(
        &self,
        materialized: Materialized<K, VA>,
        default_value_serde: Option<SerdeRef<VA>>,
        prefix: &str,
        step: TableStep<K, V, VA>,
    ) -> KTable<K, VA> {
        let b = self.b.clone();
        let carried_key = self.key_serde.clone();
        let agg = aggregation(&b, &materialized, prefix, carried_key, default_value_serde);
        let (store_name, name, ks, vas) = (agg.store, agg.node, agg.key_serde, agg.value_serde);
        let base = self.name.clone().unwrap_or_else(|| store_name.clone());
        let vs = require_serde(&b, &base, "value", self.value_serde.clone(), None);
        let change_serde: SerdeRef<Change<V>> = Arc::new(ChangeSerde::new(vs));
        let source = repartition_through(
            &b,
            self.node,
            &base,
            self.name.is_some(),
            ks.clone(),
            change_serde,
            None,
        );
        let store = add_ts_store(&b, store_name, &materialized, ks.clone(), vas.clone());
        let node = add_store_node::<K, Change<V>, TsHandle<K, VA>, _, _>(
            &b,
            name,
            &[source],
            &store,
            Some(flush_and_forward::<TsHandle<K, VA>>),
            move || {
                let step = step.clone();
                move |store: &TsHandle<K, VA>,
                      r: Record<K, Change<V>>,
                      ch: &Children,
                      t: &mut TaskContext|
                      -> Result<()> {
                    update_aggregate(store, r.key, r.timestamp, ch, t, |k, old| {
                        step(k, r.value, old)
                    })
                }
            },
        );
        KTable::new(b.clone(), node, Some(ks), Some(vas), Some(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;

    #[test]
    fn change_serde_round_trips_every_shape() {
        let s = ChangeSerde::new(Arc::new(StringSerde) as SerdeRef<String>);
        for c in [
            Change::new(Some("new".to_string()), Some("old".to_string())),
            Change::new(Some("n".to_string()), None),
            Change::new(None, Some("o".to_string())),
            Change::new(None, None),
        ] {
            let bytes = s.serialize(&c).unwrap();
            assert_eq!(s.deserialize(&bytes).unwrap(), c);
        }
        assert!(s.deserialize(&[3, 0, 0, 0, 9, b'x']).is_err());
        assert!(s.deserialize(&[]).is_err());
    }
}
