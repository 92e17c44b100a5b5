//! The per-record steps of foreign-key table-table joins (KIP-213): the subscription and
//! response records and their encodings, the subscription store's key, and what each of
//! the join's nodes does with a record. The DSL (`dsl::fk_join`) adds the internal topics,
//! the stores and the nodes, and describes the four steps.

use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::context::TaskContext;
use crate::internals::forward::TsHandle;
use crate::internals::node::Children;
use crate::record::{Change, Record};
use crate::serde::{Serde, SerdeError, SerdeRef};
use crate::state::KeyValueStoreHandle;

/// What the right side does with a subscription (Kafka's `SubscriptionWrapper.Instruction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instruction {
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
pub(crate) struct Subscription<K> {
    pub(crate) hash: Option<u64>,
    pub(crate) instruction: Instruction,
    pub(crate) key: K,
}

/// A response: the hash of the left value it answers and the right value, if any.
#[derive(Clone)]
pub(crate) struct Response<VO> {
    pub(crate) hash: Option<u64>,
    pub(crate) value: Option<VO>,
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
pub(crate) struct SubscriptionSerde<K> {
    pub(crate) key: SerdeRef<K>,
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
pub(crate) struct ResponseSerde<VO> {
    pub(crate) value: SerdeRef<VO>,
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
pub(crate) struct CombinedKey<KO, K> {
    pub(crate) foreign: KO,
    pub(crate) key: K,
}

/// The serde of [`CombinedKey`]s, by the foreign key's and the left key's serdes.
pub(crate) struct CombinedKeySerde<KO, K> {
    pub(crate) foreign: SerdeRef<KO>,
    pub(crate) key: SerdeRef<K>,
}

/// The prefix of every combined key with this foreign key.
pub(crate) fn foreign_prefix<KO: 'static>(
    serde: &SerdeRef<KO>,
    fk: &KO,
) -> Result<Vec<u8>, SerdeError> {
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
pub(crate) struct Subscribed {
    pub(crate) hash: Option<u64>,
    pub(crate) timestamp: i64,
}

/// The serde of [`Subscribed`] entries.
pub(crate) struct SubscribedSerde;

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

/// The hash of `v`'s bytes by `serde` (`None` for no value).
pub(crate) fn hash_of<V: 'static>(serde: &SerdeRef<V>, v: Option<&V>) -> Result<Option<u64>> {
    v.map(|v| {
        serde
            .serialize(v)
            .map(|b| value_hash(&b))
            .map_err(|source| StreamsError::Serialization {
                which: "value",
                target: "a foreign-key join's value hash".into(),
                source,
            })
    })
    .transpose()
}

/// The joiner of a foreign-key join: left value, right value (`None` only for left joins).
pub(crate) type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> VR + Send + Sync>;

/// The foreign-key extractor.
pub(crate) type FkExtractor<V, KO> = Arc<dyn Fn(&V) -> KO + Send + Sync>;

/// The subscription store's handle: (foreign key, left key) -> subscription.
pub(crate) type SubStore<KO, K> = KeyValueStoreHandle<CombinedKey<KO, K>, Subscribed>;

/// Step 1: a left change becomes subscriptions keyed by foreign key: a subscription to the
/// new foreign key and, when the foreign key changed or the row was deleted, an
/// unsubscription from the old one. `foreign_key_serde` compares foreign keys (by their
/// bytes) and tells null ones.
pub(crate) fn send_subscriptions<K: Data, V: Data, KO: Data>(
    extractor: &FkExtractor<V, KO>,
    value_serde: &SerdeRef<V>,
    foreign_key_serde: &SerdeRef<KO>,
    left_join: bool,
    r: Record<K, Change<V>>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    let (ex, hv, fks) = (extractor, value_serde, foreign_key_serde);
    let hash = hash_of(hv, r.value.new.as_ref())?;
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
    let null = |fk: &KO| fks.is_null(fk);
    let old_fk = r.value.old.as_ref().map(|v| ex(v));
    let new_fk = r.value.new.as_ref().map(|v| ex(v));
    // Kafka's SubscriptionSendProcessorSupplier, 3.7+ (one difference, below).
    if left_join {
        match (old_fk, new_fk) {
            // A deleted row whose foreign key was null had a result with no right
            // value: the null-key subscription is answered with none, which deletes it.
            (Some(o), None) if null(&o) => send(o, Instruction::PropagateNullIfMissing, t),
            // A deleted row: unsubscribe, and the answer makes the result a
            // tombstone (Kafka also sends a null-key subscription, answered the
            // same way).
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
        // A null old foreign key subscribed to nothing: as if there were no old row.
        match (old_fk.filter(|o| !null(o)), new_fk) {
            (old, Some(n)) if null(&n) => {
                t.metrics.dropped_records += 1;
                match old {
                    Some(o) => send(o, Instruction::DeleteAndPropagate, t),
                    None => Ok(()),
                }
            }
            // The same foreign key: had it no match, the old row had none either, so
            // only a match is worth an answer (no idempotent tombstone).
            (Some(o), Some(n)) if same(&n, &o) => send(n, Instruction::PropagateOnlyIfPresent, t),
            (Some(o), Some(n)) => {
                send(o, Instruction::DeleteNoPropagate, t)?;
                send(n, Instruction::PropagateNullIfMissing, t)
            }
            (Some(o), None) => send(o, Instruction::DeleteAndPropagate, t),
            (None, Some(n)) => send(n, Instruction::PropagateOnlyIfPresent, t),
            (None, None) => Ok(()),
        }
    }
}

/// Step 2, on the right side: records (or removes) a subscription in the subscription
/// store and passes it on to be answered.
pub(crate) fn receive_subscription<K: Data, KO: Data>(
    fk_serde: &SerdeRef<KO>,
    subs: &SubStore<KO, K>,
    r: Record<KO, Subscription<K>>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
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

/// Step 2, answered: the right value for a subscription, sent back keyed by the left key.
pub(crate) fn answer_subscription<K: Data, KO: Data, VO: Data>(
    rights: &TsHandle<KO, VO>,
    r: Record<KO, Subscription<K>>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
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

/// Step 3: a right change goes to every subscriber of its key.
pub(crate) fn forward_to_subscribers<K: Data, KO: Data, VO: Data>(
    pk: &SerdeRef<KO>,
    subs: &SubStore<KO, K>,
    r: Record<KO, Change<VO>>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    if pk.is_null(&r.key) {
        t.metrics.dropped_records += 1;
        return Ok(());
    }
    let prefix = foreign_prefix(pk, &r.key).map_err(|source| StreamsError::Serialization {
        which: "key",
        target: "a foreign-key join's subscription store".into(),
        source,
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

/// Step 4: a response resolved against the current left value: dropped if stale (the left
/// row changed after its subscription was sent), else the joined value (or no value).
pub(crate) fn resolve_response<K: Data, V: Data, VO: Data, VR: Data>(
    hv: &SerdeRef<V>,
    joiner: &FkJoiner<V, VO, VR>,
    left_join: bool,
    lefts: &TsHandle<K, V>,
    r: Record<K, Response<VO>>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    let current = lefts.get(&r.key)?.map(|v| v.value);
    if hash_of(hv, current.as_ref())? != r.value.hash {
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
