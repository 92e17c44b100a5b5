//! [`GlobalKTable`]: a table every instance holds in full, and the stream joins that look it
//! up by a key computed from each record.

use std::sync::Arc;

use crate::Data;
use crate::error::Result;
use crate::internals::node::Children;
use crate::internals::stream_join::JoinFn;
use crate::internals::task::TaskContext;
use crate::record::Record;
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::{KeyValueStoreHandle, StoreBuilder, Stores};
use crate::topology::GlobalStoreSpec;

use super::builder::{Shared, add_store_node, require_serde};
use super::options::{Consumed, Materialized, Named};
use super::{KStream, StreamsBuilder};

/// A table that every instance holds in full (all partitions of its topic): stream records
/// look it up by any key computed from them, so no co-partitioning is needed. Its topic is
/// its changelog; it is loaded to the end before processing starts and then kept current by
/// a global thread (Kafka Streams' `GlobalKTable`). Query it by
/// [`queryable_store_name`](Self::queryable_store_name).
pub struct GlobalKTable<K, V> {
    store: String,
    _types: std::marker::PhantomData<fn(K, V)>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            _types: std::marker::PhantomData,
        }
    }
}

debug_fields!(GlobalKTable<K, V>, s => { "store": s.store });

impl<K, V> GlobalKTable<K, V> {
    /// The name of its store (a key-value store of `K` to `V`).
    pub fn queryable_store_name(&self) -> &str {
        &self.store
    }
}

impl StreamsBuilder {
    /// A global table of `topic` with the default serdes; its store gets a generated name.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let pages = builder.global_table::<String, String>("pages"); // page -> category
    /// builder.stream::<String, String>("views")                     // user -> page
    ///     .join_global(&pages, |_user, page| page.clone(), |page, category| format!("{page} ({category})"))
    ///     .to("categorized");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, Option<String>>("pages").pipe_input("/shoes".into(), Some("shop".into())).unwrap();
    /// driver.input_topic::<String, String>("views").pipe_input("u1".into(), "/shoes".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("categorized").read_values_to_list().unwrap(),
    ///            vec!["/shoes (shop)"]);
    /// ```
    pub fn global_table<K: Data + DefaultSerde, V: Data + DefaultSerde>(
        &self,
        topic: &str,
    ) -> GlobalKTable<K, V> {
        self.global_table_with(
            topic,
            Consumed::with(K::default_serde(), V::default_serde()),
            Materialized::new(),
        )
    }

    /// A global table of `topic` with explicit options (the store's name and engine come from
    /// `materialized`; it is never cached or logged: the topic is its changelog).
    pub fn global_table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let b = &self.inner;
        let store = b
            .borrow_mut()
            .name_or(materialized.name.as_deref(), "GLOBALKTABLE-STATE-STORE-");
        // Kafka's global source and processor names use up two numbers too.
        if consumed.name.is_none() {
            b.borrow_mut().generate("KSTREAM-SOURCE-");
        }
        b.borrow_mut().generate("KTABLE-SOURCE-");
        let ks = require_serde(
            b,
            &store,
            "key",
            consumed.key_serde.or(materialized.key_serde.clone()),
            None,
        );
        let vs = require_serde(
            b,
            &store,
            "value",
            consumed.value_serde.or(materialized.value_serde.clone()),
            None,
        );
        let builder = Stores::default_key_value_store_builder(
            &store,
            materialized.supplier.clone(),
            ks.clone(),
            vs.clone(),
        )
        .with_logging_enabled(false);
        let parts = builder.into_spec();
        let (check_k, check_v) = (ks, vs);
        b.borrow_mut().add_global_store(GlobalStoreSpec {
            name: store.clone(),
            topic: topic.to_string(),
            factory: parts.factory,
            check: Arc::new(move |k, v| {
                check_k.deserialize(k)?;
                if let Some(v) = v {
                    check_v.deserialize(v)?;
                }
                Ok(())
            }),
        });
        GlobalKTable {
            store,
            _types: std::marker::PhantomData,
        }
    }
}

/// Computes a stream record's lookup key in a global table.
type KeySelector<K, V, GK> = Arc<dyn Fn(&K, &V) -> GK + Send + Sync>;

/// Adds the stream-global-table join node.
fn global_join<K: Data, V: Data, GK: Data, GV: Data, VR: Data>(
    stream: &KStream<K, V>,
    table: &GlobalKTable<GK, GV>,
    key_selector: KeySelector<K, V, GK>,
    joiner: JoinFn<K, V, GV, VR>,
    named: Named,
    left: bool,
) -> KStream<K, VR> {
    let b: Shared = stream.b.clone();
    let name = b.borrow_mut().name_or(
        named.name.as_deref(),
        if left {
            "KSTREAM-LEFTJOIN-"
        } else {
            "KSTREAM-JOIN-"
        },
    );
    let vs: Option<SerdeRef<V>> = stream.value_serde.clone();
    let node = add_store_node::<K, V, KeyValueStoreHandle<GK, GV>, _, _>(
        &b,
        name,
        &[stream.node],
        &table.store,
        None,
        move || {
            let (key_selector, joiner, vs) = (key_selector.clone(), joiner.clone(), vs.clone());
            move |store: &KeyValueStoreHandle<GK, GV>,
                  r: Record<K, V>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> {
                if vs.as_ref().is_some_and(|s| s.is_null(&r.value)) {
                    t.metrics.dropped_records += 1;
                    return Ok(());
                }
                let gk = key_selector(&r.key, &r.value);
                let found = if store.is_null_key(&gk) {
                    if !left {
                        // KIP-962: an inner join drops a record whose lookup key is null.
                        t.metrics.dropped_records += 1;
                        return Ok(());
                    }
                    None
                } else {
                    store.get(&gk)?
                };
                if left || found.is_some() {
                    let out = joiner(&r.key, Some(&r.value), found.as_ref());
                    ch.forward(t, r.with_value(out))?;
                }
                Ok(())
            }
        },
    );
    KStream::new(
        b,
        node,
        stream.key_serde.clone(),
        None,
        stream.repartition_required,
    )
}

/// Writes each stream-global join kind on `KStream<K, V>`: `$plain`, and `$with_key` with
/// a joiner that also sees the stream key and a processor name. `$left`: the kind passes on
/// records the table has no value for. The caller gives the impl block's docs, then each
/// kind's `$plain` docs.
macro_rules! global_join_methods {
    (
        $(#[$impl_doc:meta])*
        impl KStream;
        $(
            $(#[$doc:meta])*
            $left:literal: $plain:ident, $with_key:ident, ($v:ty, $o:ty), $adapt:ident;
        )+
    ) => {
        $(#[$impl_doc])*
        impl<K: Data, V: Data> KStream<K, V> {
            $(
                $(#[$doc])*
                pub fn $plain<GK: Data, GV: Data, VR: Data, S, F>(&self, table: &GlobalKTable<GK, GV>, key_selector: S, joiner: F) -> KStream<K, VR>
                where S: Fn(&K, &V) -> GK + Send + Sync + 'static, F: Fn($v, $o) -> VR + Send + Sync + 'static {
                    let with_key = move |_: &K, v: $v, g: $o| joiner(v, g);
                    self.$with_key(table, key_selector, with_key, Named::none())
                }

                #[doc = concat!("[`", stringify!($plain), "`](Self::", stringify!($plain), ") with a joiner that also sees the stream key, and a processor name.")]
                pub fn $with_key<GK: Data, GV: Data, VR: Data, S, F>(&self, table: &GlobalKTable<GK, GV>, key_selector: S, joiner: F, named: Named) -> KStream<K, VR>
                where S: Fn(&K, &V) -> GK + Send + Sync + 'static, F: Fn(&K, $v, $o) -> VR + Send + Sync + 'static {
                    let f = super::join_methods::$adapt(joiner);
                    global_join(self, table, Arc::new(key_selector), f, named, $left)
                }
            )+
        }
    };
}

global_join_methods! {
    /// Stream-global-table joins (Kafka's `KStream#join(GlobalKTable, KeyValueMapper,
    /// ValueJoiner)`). Each stream record computes its lookup key with `key_selector` and joins
    /// the global table's current value for it; table updates emit nothing; the result keeps the
    /// stream record's key and timestamp. No repartitioning or co-partitioning is needed.
    impl KStream;
    /// Inner join with a global table: records whose lookup key is in the table.
    false: join_global, join_global_with_key, (&V, &GV), inner_joiner;
    /// Left join with a global table: every record, joined with the table's value for its
    /// lookup key or with `None`.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let pages = builder.global_table::<String, String>("pages");
    /// builder.stream::<String, String>("views")
    ///     .left_join_global(&pages, |_, page| page.clone(), |page, cat| format!("{page}:{}", cat.map_or("?", |c| c.as_str())))
    ///     .to("out");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("views").pipe_input("u1".into(), "/new".into()).unwrap();
    /// assert_eq!(driver.output_topic::<String, String>("out").read_values_to_list().unwrap(), vec!["/new:?"]);
    /// ```
    true: left_join_global, left_join_global_with_key, (&V, Option<&GV>), left_joiner;
}
