//! Foreign-key table-table joins (KIP-213, Kafka's `KTable#join(other, foreignKeyExtractor,
//! joiner)`): many rows of the left table join one row of the right table, whose key is
//! extracted from the left value.
//!
//! Four steps over two internal topics, as in Kafka Streams:
//! 1. each left change sends a *subscription* (the left key, a hash of the new left value and
//!    an instruction) to the `...-subscription-registration-topic`, keyed and so partitioned
//!    by the foreign key; changing the foreign key (or deleting the row) unsubscribes from the
//!    old one;
//! 2. on the right side, the subscription store (foreign key + left key -> hash) records it
//!    and the current right value is sent back on the `...-subscription-response-topic`,
//!    keyed by the left key;
//! 3. a right change is sent to every subscriber of its key (a prefix scan);
//! 4. on the left side, a response whose hash is not the hash of the current left value is
//!    stale (the row changed meanwhile) and dropped; otherwise the joined value (or a
//!    tombstone) becomes the result table's new value, materialized so that it carries old
//!    values downstream.
//!
//! This module adds the topics, stores and nodes; what each node does with a record is in
//! `internals::fk_join`.

use std::sync::Arc;

use crate::Data;
use crate::error::Result;
use crate::internals::fk_join::{
    CombinedKey, CombinedKeySerde, FkExtractor, FkJoiner, Response, ResponseSerde, SubStore,
    Subscribed, SubscribedSerde, Subscription, SubscriptionSerde, answer_subscription,
    forward_to_subscribers, receive_subscription, resolve_response, send_subscriptions,
};
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::{Change, Record};
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::{StoreBuilder, Stores};
use crate::time::RecordTimestamp;
use crate::topology::TopicName;

use super::KTable;
use super::builder::{
    Shared, TsHandle, add_fn_node, add_sink, add_source, add_store_node, add_table_source_node,
    require_serde,
};
use super::options::{Materialized, Named};

/// Adds a foreign-key join of `left` with `right`; returns the (materialized) result.
#[allow(clippy::too_many_arguments)]
fn fk_join<K: Data, V: Data, KO: Data, VO: Data, VR: Data>(
    left: &KTable<K, V>,
    right: &KTable<KO, VO>,
    extractor: FkExtractor<V, KO>,
    joiner: FkJoiner<V, VO, VR>,
    left_join: bool,
    named: Named,
    materialized: Materialized<K, VR>,
) -> KTable<K, VR> {
    let b: Shared = left.b.clone();
    let (left_node, left_store) = left.materialized_view();
    let (right_node, right_store) = right.materialized_view();
    let base = match &named.name {
        Some(n) => n.clone(),
        None => b.borrow_mut().generate("KTABLE-FK-JOIN-"),
    };
    let ks = require_serde(&b, &base, "key", left.key_serde.clone(), None);
    let vs = require_serde(&b, &base, "value", left.value_serde.clone(), None);
    let kos = require_serde(&b, &base, "foreign key", right.key_serde.clone(), None);
    let vos = require_serde(&b, &base, "other value", right.value_serde.clone(), None);
    let sub_serde: SerdeRef<Subscription<K>> = Arc::new(SubscriptionSerde { key: ks.clone() });
    let resp_serde: SerdeRef<Response<VO>> = Arc::new(ResponseSerde { value: vos.clone() });
    let sub_topic = TopicName::Internal(format!("{base}-subscription-registration-topic"));
    let resp_topic = TopicName::Internal(format!("{base}-subscription-response-topic"));
    {
        let mut ib = b.borrow_mut();
        ib.add_repartition_topic(sub_topic.clone(), None);
        ib.add_repartition_topic(resp_topic.clone(), None);
    }

    // 1. Left changes -> subscriptions keyed by foreign key.
    let send_name = format!("{base}-subscription-send");
    let (ex, hv, fks) = (extractor, vs.clone(), kos.clone());
    let send = add_fn_node::<K, Change<V>, _, _>(&b, send_name, &[left_node], move || {
        let (ex, hv, fks) = (ex.clone(), hv.clone(), fks.clone());
        move |r: Record<K, Change<V>>, ch: &Children, t: &mut TaskContext| -> Result<()> {
            send_subscriptions(&ex, &hv, &fks, left_join, r, ch, t)
        }
    });
    let sink_name = format!("{base}-subscription-registration-sink");
    let source_name = format!("{base}-subscription-registration-source");
    add_sink(
        &b,
        sink_name,
        send,
        sub_topic.clone(),
        kos.clone(),
        sub_serde.clone(),
    );
    let sub_source = add_source(
        &b,
        source_name,
        vec![sub_topic],
        kos.clone(),
        sub_serde,
        Some(Arc::new(RecordTimestamp)),
        Some(crate::time::InvalidTimestampPolicy::Fail),
    );

    // 2. The subscription store on the right side.
    let store_name = b
        .borrow_mut()
        .generate("KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-");
    let combined: SerdeRef<CombinedKey<KO, K>> = Arc::new(CombinedKeySerde {
        foreign: kos.clone(),
        key: ks.clone(),
    });
    let subscribed: SerdeRef<Subscribed> = Arc::new(SubscribedSerde);
    b.borrow_mut().add_store(
        Stores::default_key_value_store_builder(&store_name, None, combined, subscribed)
            .into_spec(),
    );
    let fk_serde = kos.clone();
    let receive = add_store_node::<KO, Subscription<K>, SubStore<KO, K>, _, _>(
        &b,
        format!("{base}-subscription-receive"),
        &[sub_source],
        &store_name,
        None,
        move || {
            let fk_serde = fk_serde.clone();
            move |subs: &SubStore<KO, K>,
                  r: Record<KO, Subscription<K>>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> { receive_subscription(&fk_serde, subs, r, ch, t) }
        },
    );
    // The right value for the subscription, sent back keyed by the left key.
    let answer = add_store_node::<KO, Subscription<K>, TsHandle<KO, VO>, _, _>(
        &b,
        format!("{base}-subscription-join"),
        &[receive],
        &right_store,
        None,
        || {
            |rights: &TsHandle<KO, VO>,
             r: Record<KO, Subscription<K>>,
             ch: &Children,
             t: &mut TaskContext|
             -> Result<()> { answer_subscription(rights, r, ch, t) }
        },
    );
    // 3. A right change goes to every subscriber of its key.
    let pk = kos.clone();
    let foreign = add_store_node::<KO, Change<VO>, SubStore<KO, K>, _, _>(
        &b,
        format!("{base}-foreign-join"),
        &[right_node],
        &store_name,
        None,
        move || {
            let pk = pk.clone();
            move |subs: &SubStore<KO, K>,
                  r: Record<KO, Change<VO>>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> { forward_to_subscribers(&pk, subs, r, ch, t) }
        },
    );
    let (resp_sink, resp_source) = (
        format!("{base}-subscription-response-sink"),
        format!("{base}-subscription-response-source"),
    );
    let sink = add_sink(
        &b,
        resp_sink,
        answer,
        resp_topic.clone(),
        ks.clone(),
        resp_serde.clone(),
    );
    {
        // The foreign side's answers go to the same sink.
        let mut ib = b.borrow_mut();
        ib.add_parent(sink, foreign);
    }
    let resp_in = add_source(
        &b,
        resp_source,
        vec![resp_topic],
        ks.clone(),
        resp_serde,
        Some(Arc::new(RecordTimestamp)),
        Some(crate::time::InvalidTimestampPolicy::Fail),
    );

    // 4. Responses resolved against the current left value.
    let hv = vs;
    let resolved = add_store_node::<K, Response<VO>, TsHandle<K, V>, _, _>(
        &b,
        format!("{base}-response-join"),
        &[resp_in],
        &left_store,
        None,
        move || {
            let (hv, joiner) = (hv.clone(), joiner.clone());
            move |lefts: &TsHandle<K, V>,
                  r: Record<K, Response<VO>>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> {
                resolve_response(&hv, &joiner, left_join, lefts, r, ch, t)
            }
        },
    );
    b.borrow_mut().copartition(
        &format!("{base}-subscription-registration"),
        &[sub_source, right_node],
    );
    b.borrow_mut().copartition(
        &format!("{base}-subscription-response"),
        &[resp_in, left_node],
    );

    // The result table, materialized so that it carries old values. Unnamed, it stands
    // for Kafka's unmaterialized result, which has no store and so no cache: results go
    // out as they come, and deleting a left row that never joined sends a tombstone (only
    // a caching store can tell that no result was ever sent).
    let (store, materialized) = match &materialized.name {
        Some(n) => (n.clone(), materialized),
        None => (
            b.borrow_mut()
                .generate("KTABLE-FK-JOIN-OUTPUT-STATE-STORE-"),
            materialized.with_caching_disabled(),
        ),
    };
    let out_vs = require_serde(
        &b,
        &base,
        "result value",
        materialized.value_serde.clone(),
        None,
    );
    let out_ks = materialized.key_serde.clone().unwrap_or(ks);
    let materialized = materialized.with_name(store);
    let (node, store) = add_table_source_node::<K, Option<VR>, VR>(
        &b,
        resolved,
        Some(&format!("{base}-result")),
        materialized,
        out_ks.clone(),
        out_vs.clone(),
        |v| v,
        true,
    );
    KTable::new(b, node, Some(out_ks), Some(out_vs), Some(store))
}

/// An inner foreign-key join's joiner: called with both values.
fn inner_fk_joiner<V, VO, VR>(
    joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
) -> FkJoiner<V, VO, VR> {
    Arc::new(move |v, o| match o {
        Some(o) => joiner(v, o),
        None => unreachable!("an inner join calls its joiner with both values"),
    })
}

/// A left foreign-key join's joiner: called with the other row's value if there is one.
fn left_fk_joiner<V, VO, VR>(
    joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
) -> FkJoiner<V, VO, VR> {
    Arc::new(joiner)
}

/// Writes each foreign-key join kind on `KTable<K, V>`: `$plain` (the result's default
/// value serde), and `$with` with a base name for its processors, internal topics and store
/// and options for the result's store. `$left`: every left row has a result. `$o` is what
/// the joiner gets of the other row, `$adapt` makes the joiner the join node calls. The caller gives the impl block's docs, then each
/// kind's `$plain` docs.
macro_rules! fk_join_methods {
    (
        $(#[$impl_doc:meta])*
        impl KTable;
        $(
            $(#[$doc:meta])*
            $left:literal: $plain:ident, $with:ident, $o:ty, $adapt:ident;
        )+
    ) => {
        $(#[$impl_doc])*
        impl<K: Data, V: Data> KTable<K, V> {
            $(
                $(#[$doc])*
                pub fn $plain<KO: Data, VO: Data, VR: Data + DefaultSerde, X, F>(&self, other: &KTable<KO, VO>, foreign_key: X, joiner: F) -> KTable<K, VR>
                where X: Fn(&V) -> KO + Send + Sync + 'static, F: Fn(&V, $o) -> VR + Send + Sync + 'static {
                    let materialized = Materialized::with_value(VR::default_serde());
                    self.$with(other, foreign_key, joiner, Named::none(), materialized)
                }

                #[doc = concat!("[`", stringify!($plain), "`](Self::", stringify!($plain), ") with a base name for its processors, internal topics and store, and options for the result's store.")]
                pub fn $with<KO: Data, VO: Data, VR: Data, X, F>(&self, other: &KTable<KO, VO>, foreign_key: X, joiner: F, named: Named, materialized: Materialized<K, VR>) -> KTable<K, VR>
                where X: Fn(&V) -> KO + Send + Sync + 'static, F: Fn(&V, $o) -> VR + Send + Sync + 'static {
                    fk_join(self, other, Arc::new(foreign_key), $adapt(joiner), $left, named, materialized)
                }
            )+
        }
    };
}

fk_join_methods! {
    /// Foreign-key joins (KIP-213). The left table's rows each name a row of `other` through
    /// `foreign_key`; the result is keyed like the left table and holds one joined value per
    /// left row whose foreign key is present in `other` (inner) or every left row (left).
    /// Updates of either table update every affected result; changing or deleting a row's
    /// foreign key retracts its old result. The result is materialized (its store is named by
    /// `Materialized`, or generated) so that it carries old values downstream.
    impl KTable;
    /// Inner foreign-key join.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// #[derive(Clone, serde::Serialize, serde::Deserialize, StreamsSerde)]
    /// #[streams(format = "json")]
    /// struct Order { product: String, qty: i64 }
    /// let builder = StreamsBuilder::new();
    /// let products = builder.table::<String, String>("products");       // id -> name
    /// builder.table::<String, Order>("orders")                            // order id -> order
    ///     .join_on_foreign_key(&products, |o| o.product.clone(), |o, name| format!("{} x {name}", o.qty))
    ///     .to_stream().to("order-lines");
    /// let config = StreamsConfig::new("doc").with_cache_max_bytes(0);
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), config).unwrap();
    /// driver.input_topic::<String, Option<String>>("products").pipe_input("p1".into(), Some("pen".into())).unwrap();
    /// driver.input_topic::<String, Option<Order>>("orders")
    ///     .pipe_input("o1".into(), Some(Order { product: "p1".into(), qty: 3 })).unwrap();
    /// driver.input_topic::<String, Option<String>>("products").pipe_input("p1".into(), Some("ink pen".into())).unwrap();
    /// assert_eq!(driver.output_topic::<String, Option<String>>("order-lines").read_values_to_list().unwrap(),
    ///            vec![Some("3 x pen".to_string()), Some("3 x ink pen".to_string())]);
    /// ```
    false: join_on_foreign_key, join_on_foreign_key_with, &VO, inner_fk_joiner;
    /// Left foreign-key join: every left row, joined with its foreign row or `None`.
    true: left_join_on_foreign_key, left_join_on_foreign_key_with, Option<&VO>, left_fk_joiner;
}
