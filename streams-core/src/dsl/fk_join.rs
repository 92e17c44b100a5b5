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

use std::sync::Arc;

use crate::Data;
use crate::error::Result;
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::{Change, Record};
use crate::serde::{DefaultSerde, Serde, SerdeError, SerdeRef};
use crate::state::{KeyValueStoreHandle, StoreBuilder, Stores};
use crate::time::RecordTimestamp;
use crate::topology::TopicName;

use super::KTable;
use super::builder::{
    Shared, TsHandle, add_fn_node, add_sink, add_source, add_store_node, add_table_source_node,
    require_serde,
};
use super::options::{Materialized, Named};

/// What the right side does with a subscription (Kafka's `SubscriptionWrapper.Instruction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instruction {
    /// Unsubscribe; no answer (the left key moved to another foreign key).
    DeleteNoPropagate = 0,
    /// Unsubscribe and answer with no value (the left row was deleted).
    DeleteAndPropagate = 1,
    /// Subscribe and answer, with no value if the right row is missing.
    PropagateNullIfMissing = 2,
    /// Subscribe and answer only if the right row exists.
    PropagateOnlyIfPresent = 3,
}

impl Instruction {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::DeleteNoPropagate,
            1 => Self::DeleteAndPropagate,
            2 => Self::PropagateNullIfMissing,
            3 => Self::PropagateOnlyIfPresent,
            _ => return None,
        })
    }
}

/// A subscription: the left key, the hash of the left value it was sent for, what to do.
#[derive(Clone)]
struct Subscription<K> {
    hash: Option<u64>,
    instruction: Instruction,
    key: K,
}

/// A response: the hash of the left value it answers and the right value, if any.
#[derive(Clone)]
struct Response<VO> {
    hash: Option<u64>,
    value: Option<VO>,
}

fn bad(detail: &str) -> SerdeError {
    SerdeError::Invalid {
        format: "foreign-key join",
        type_name: "subscription",
        detail: detail.to_string(),
    }
}

fn push_hash(hash: Option<u64>, out: &mut Vec<u8>) {
    match hash {
        Some(h) => {
            out.push(1);
            out.extend_from_slice(&h.to_be_bytes());
        }
        None => out.push(0),
    }
}

fn take_hash(bytes: &[u8]) -> Result<(Option<u64>, &[u8]), SerdeError> {
    match bytes.split_first() {
        Some((0, rest)) => Ok((None, rest)),
        Some((1, rest)) => {
            let (h, rest) = rest
                .split_at_checked(8)
                .ok_or_else(|| bad("truncated hash"))?;
            let mut a = [0u8; 8];
            a.copy_from_slice(h);
            Ok((Some(u64::from_be_bytes(a)), rest))
        }
        _ => Err(bad("bad hash flag")),
    }
}

/// `[instruction][hash flag][hash?][left key]`.
struct SubscriptionSerde<K> {
    key: SerdeRef<K>,
}

impl<K: 'static> Serde<Subscription<K>> for SubscriptionSerde<K> {
    fn serialize_into(&self, s: &Subscription<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.push(s.instruction as u8);
        push_hash(s.hash, out);
        self.key.serialize_into(&s.key, out)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Subscription<K>, SerdeError> {
        let (&i, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
        let instruction = Instruction::from_u8(i).ok_or_else(|| bad("unknown instruction"))?;
        let (hash, rest) = take_hash(rest)?;
        Ok(Subscription {
            hash,
            instruction,
            key: self.key.deserialize(rest)?,
        })
    }
}

/// `[hash flag][hash?][value flag][value?]`.
struct ResponseSerde<VO> {
    value: SerdeRef<VO>,
}

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize_into(&self, r: &Response<VO>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        push_hash(r.hash, out);
        match &r.value {
            Some(v) => {
                out.push(1);
                self.value.serialize_into(v, out)
            }
            None => {
                out.push(0);
                Ok(())
            }
        }
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Response<VO>, SerdeError> {
        let (hash, rest) = take_hash(bytes)?;
        let value = match rest.split_first() {
            Some((0, _)) => None,
            Some((1, v)) => Some(self.value.deserialize(v)?),
            _ => return Err(bad("bad value flag")),
        };
        Ok(Response { hash, value })
    }
}

/// The subscription store's key: the foreign key's bytes (length-prefixed, so that one
/// foreign key's subscribers share a prefix), then the left key's bytes.
#[derive(Clone)]
struct CombinedKey<KO, K> {
    foreign: KO,
    key: K,
}

struct CombinedKeySerde<KO, K> {
    foreign: SerdeRef<KO>,
    key: SerdeRef<K>,
}

/// The prefix of every combined key with this foreign key.
fn foreign_prefix<KO: 'static>(serde: &SerdeRef<KO>, fk: &KO) -> Result<Vec<u8>, SerdeError> {
    let bytes = serde.serialize(fk)?;
    let len = u32::try_from(bytes.len()).map_err(|_| bad("foreign key larger than 4 GiB"))?;
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes);
    Ok(out)
}

impl<KO: 'static, K: 'static> Serde<CombinedKey<KO, K>> for CombinedKeySerde<KO, K> {
    fn serialize_into(&self, c: &CombinedKey<KO, K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&foreign_prefix(&self.foreign, &c.foreign)?);
        self.key.serialize_into(&c.key, out)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<CombinedKey<KO, K>, SerdeError> {
        let (len, rest) = bytes
            .split_at_checked(4)
            .ok_or_else(|| bad("truncated key"))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (fk, pk) = rest
            .split_at_checked(len)
            .ok_or_else(|| bad("truncated key"))?;
        Ok(CombinedKey {
            foreign: self.foreign.deserialize(fk)?,
            key: self.key.deserialize(pk)?,
        })
    }
}

/// A subscription as the right side stores it: the hash of the left value and the time of
/// the subscription (`[hash flag][hash?][8-byte timestamp]`).
#[derive(Clone)]
struct Subscribed {
    hash: Option<u64>,
    timestamp: i64,
}

struct SubscribedSerde;

impl Serde<Subscribed> for SubscribedSerde {
    fn serialize_into(&self, s: &Subscribed, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        push_hash(s.hash, out);
        out.extend_from_slice(&s.timestamp.to_be_bytes());
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Subscribed, SerdeError> {
        let (hash, rest) = take_hash(bytes)?;
        let ts: [u8; 8] = rest.try_into().map_err(|_| bad("bad timestamp"))?;
        Ok(Subscribed {
            hash,
            timestamp: i64::from_be_bytes(ts),
        })
    }
}

/// The hash of a left value's bytes (64-bit FNV-1a; Kafka uses 128-bit murmur3): a response
/// is current only if it carries the hash of the left row's current value.
fn value_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn hash_of<V: 'static>(serde: &SerdeRef<V>, v: Option<&V>) -> Result<Option<u64>> {
    v.map(|v| {
        serde
            .serialize(v)
            .map(|b| value_hash(&b))
            .map_err(|source| crate::error::StreamsError::Serialization {
                which: "value",
                target: "a foreign-key join's value hash".into(),
                source,
            })
    })
    .transpose()
}

/// The joiner of a foreign-key join: left value, right value (`None` only for left joins).
type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> VR + Send + Sync>;

/// The foreign-key extractor.
type FkExtractor<V, KO> = Arc<dyn Fn(&V) -> KO + Send + Sync>;

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
    let (ex, hv, fks, kos2) = (extractor, vs.clone(), kos.clone(), kos.clone());
    let send = add_fn_node::<K, Change<V>, _, _>(&b, send_name, &[left_node], move || {
        let (ex, hv, fks, kos) = (ex.clone(), hv.clone(), fks.clone(), kos2.clone());
        move |r: Record<K, Change<V>>, ch: &Children, t: &mut TaskContext| -> Result<()> {
            let hash = hash_of(&hv, r.value.new.as_ref())?;
            let send = |fk: KO, instruction: Instruction, t: &mut TaskContext| {
                ch.forward(
                    t,
                    Record {
                        key: fk,
                        value: Subscription {
                            hash,
                            instruction,
                            key: r.key.clone(),
                        },
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    },
                )
            };
            let same = |a: &KO, b: &KO| fks.serialize(a).ok() == fks.serialize(b).ok();
            let null = |fk: &KO| kos.is_null(fk);
            let old_fk = r.value.old.as_ref().map(|v| ex(v));
            let new_fk = r.value.new.as_ref().map(|v| ex(v));
            // Kafka's SubscriptionSendProcessorSupplier (one difference, below).
            if left_join {
                match (old_fk, new_fk) {
                    // A deleted row: unsubscribe, and the answer makes the result a
                    // tombstone (Kafka also sends a null-key subscription, answered the
                    // same way).
                    (Some(o), None) if null(&o) => Ok(()),
                    (Some(o), None) => send(o, Instruction::DeleteAndPropagate, t),
                    (Some(o), Some(n)) => {
                        // Kafka propagates here too; both answers would then carry the
                        // new value's hash and the old key's (no value) could arrive last
                        // from another partition and win. The new key's answer alone sets
                        // the result.
                        if !null(&o) && !same(&n, &o) {
                            send(o, Instruction::DeleteNoPropagate, t)?;
                        }
                        send(n, Instruction::PropagateNullIfMissing, t)
                    }
                    (None, Some(n)) => send(n, Instruction::PropagateNullIfMissing, t),
                    (None, None) => Ok(()),
                }
            } else {
                match (old_fk, new_fk) {
                    (Some(o), _) if null(&o) => {
                        t.metrics.dropped_records += 1;
                        Ok(())
                    }
                    (Some(_), Some(n)) if null(&n) => {
                        t.metrics.dropped_records += 1;
                        Ok(())
                    }
                    (Some(o), Some(n)) => {
                        if !same(&n, &o) {
                            send(o, Instruction::DeleteNoPropagate, t)?;
                        }
                        send(n, Instruction::PropagateNullIfMissing, t)
                    }
                    (Some(o), None) => send(o, Instruction::DeleteAndPropagate, t),
                    (None, Some(n)) if null(&n) => {
                        t.metrics.dropped_records += 1;
                        Ok(())
                    }
                    (None, Some(n)) => send(n, Instruction::PropagateOnlyIfPresent, t),
                    (None, None) => Ok(()),
                }
            }
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
    type SubStore<KO, K> = KeyValueStoreHandle<CombinedKey<KO, K>, Subscribed>;
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
                  -> Result<()> {
                if fk_serde.is_null(&r.key) {
                    // A left join's null foreign key: nothing to subscribe to, answered
                    // with no value.
                    if r.value.instruction == Instruction::PropagateNullIfMissing {
                        return ch.forward(t, r);
                    }
                    t.metrics.dropped_records += 1;
                    return Ok(());
                }
                let ck = CombinedKey {
                    foreign: r.key.clone(),
                    key: r.value.key.clone(),
                };
                match r.value.instruction {
                    Instruction::DeleteAndPropagate | Instruction::DeleteNoPropagate => {
                        subs.delete(&ck)?;
                    }
                    _ => subs.put(
                        &ck,
                        &Subscribed {
                            hash: r.value.hash,
                            timestamp: r.timestamp,
                        },
                    )?,
                }
                ch.forward(t, r)
            }
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
             -> Result<()> {
                let found = if rights.is_null_key(&r.key) {
                    None
                } else {
                    rights.get(&r.key)?
                };
                let ts = found
                    .as_ref()
                    .map_or(r.timestamp, |f| f.timestamp.max(r.timestamp));
                let value = match (r.value.instruction, found) {
                    (Instruction::DeleteNoPropagate, _) => return Ok(()),
                    (Instruction::DeleteAndPropagate, _) => None,
                    (Instruction::PropagateNullIfMissing, f) => f.map(|f| f.value),
                    (Instruction::PropagateOnlyIfPresent, None) => return Ok(()),
                    (Instruction::PropagateOnlyIfPresent, Some(f)) => Some(f.value),
                };
                ch.forward(
                    t,
                    Record {
                        key: r.value.key,
                        value: Response {
                            hash: r.value.hash,
                            value,
                        },
                        timestamp: ts,
                        headers: r.headers,
                    },
                )
            }
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
                  -> Result<()> {
                if pk.is_null(&r.key) {
                    t.metrics.dropped_records += 1;
                    return Ok(());
                }
                let prefix = foreign_prefix(&pk, &r.key).map_err(|source| {
                    crate::error::StreamsError::Serialization {
                        which: "key",
                        target: "a foreign-key join's subscription store".into(),
                        source,
                    }
                })?;
                for (ck, s) in subs.prefix_scan(&prefix)? {
                    ch.forward(
                        t,
                        Record {
                            key: ck.key,
                            value: Response {
                                hash: s.hash,
                                value: r.value.new.clone(),
                            },
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        },
                    )?;
                }
                Ok(())
            }
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
                let current = lefts.get(&r.key)?.map(|v| v.value);
                if hash_of(&hv, current.as_ref())? != r.value.hash {
                    // Stale: the left row changed after this subscription was sent.
                    t.metrics.dropped_records += 1;
                    return Ok(());
                }
                let result = match (&current, &r.value.value) {
                    (Some(l), Some(o)) => Some(joiner(l, Some(o))),
                    (Some(l), None) if left_join => Some(joiner(l, None)),
                    _ => None,
                };
                ch.forward(t, r.with_value(result))
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

    // The result table, materialized so that it carries old values.
    let store = match &materialized.name {
        Some(n) => n.clone(),
        None => b
            .borrow_mut()
            .generate("KTABLE-FK-JOIN-OUTPUT-STATE-STORE-"),
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
    );
    KTable::new(b, node, Some(out_ks), Some(out_vs), Some(store))
}

/// Foreign-key joins (KIP-213). The left table's rows each name a row of `other` through
/// `foreign_key`; the result is keyed like the left table and holds one joined value per
/// left row whose foreign key is present in `other` (inner) or every left row (left).
/// Updates of either table update every affected result; changing or deleting a row's
/// foreign key retracts its old result. The result is materialized (its store is named by
/// `Materialized`, or generated) so that it carries old values downstream.
impl<K: Data, V: Data> KTable<K, V> {
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
    pub fn join_on_foreign_key<KO, VO, VR, X, F>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: X,
        joiner: F,
    ) -> KTable<K, VR>
    where
        KO: Data,
        VO: Data,
        VR: Data + DefaultSerde,
        X: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        self.join_on_foreign_key_with(
            other,
            foreign_key,
            joiner,
            Named::none(),
            Materialized::with_value(VR::default_serde()),
        )
    }

    /// [`join_on_foreign_key`](Self::join_on_foreign_key) with a base name for its
    /// processors, internal topics and store, and options for the result's store.
    pub fn join_on_foreign_key_with<KO, VO, VR, X, F>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: X,
        joiner: F,
        named: Named,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        KO: Data,
        VO: Data,
        VR: Data,
        X: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        let j: FkJoiner<V, VO, VR> = Arc::new(move |v, o| match o {
            Some(o) => joiner(v, o),
            None => unreachable!("an inner join calls its joiner with both values"),
        });
        fk_join(
            self,
            other,
            Arc::new(foreign_key),
            j,
            false,
            named,
            materialized,
        )
    }

    /// Left foreign-key join: every left row, joined with its foreign row or `None`.
    pub fn left_join_on_foreign_key<KO, VO, VR, X, F>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: X,
        joiner: F,
    ) -> KTable<K, VR>
    where
        KO: Data,
        VO: Data,
        VR: Data + DefaultSerde,
        X: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        self.left_join_on_foreign_key_with(
            other,
            foreign_key,
            joiner,
            Named::none(),
            Materialized::with_value(VR::default_serde()),
        )
    }

    /// [`left_join_on_foreign_key`](Self::left_join_on_foreign_key) with a base name and
    /// options for the result's store.
    pub fn left_join_on_foreign_key_with<KO, VO, VR, X, F>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: X,
        joiner: F,
        named: Named,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        KO: Data,
        VO: Data,
        VR: Data,
        X: Fn(&V) -> KO + Send + Sync + 'static,
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        fk_join(
            self,
            other,
            Arc::new(foreign_key),
            Arc::new(joiner),
            true,
            named,
            materialized,
        )
    }
}
