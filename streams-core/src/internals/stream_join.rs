//! The stream-stream join node (Kafka Streams' `KStreamKStreamJoin`): both sides buffered in
//! window stores, each arrival joined with every buffered partner in its window, and (for
//! left and outer joins) unmatched records held in a shared store until their window
//! closes. The DSL (`dsl::join`) wires it up.

use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::context::TaskContext;
use crate::internals::join_presence::Presence;
use crate::internals::node::{Children, Input, NodeOps};
use crate::record::Record;
use crate::serde::{Serde, SerdeError, SerdeRef};
use crate::state::{KeyValueStoreHandle, WindowStoreHandle};
use crate::window::JoinWindows;

/// A record of either join input, as the join node receives it.
#[derive(Clone)]
pub(crate) enum Side<VL, VR> {
    Left(VL),
    Right(VR),
}

/// The join function every stream-stream join reduces to: key, left value, right value
/// (`None`: no partner) -> result. Only combinations the join type allows are passed.
pub(crate) type JoinFn<K, VL, VR, VO> =
    Arc<dyn Fn(&K, Option<&VL>, Option<&VR>) -> VO + Send + Sync>;

/// Which stream-stream join: the sides that emit unmatched records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Outer,
}

impl JoinKind {
    fn left_emits_unmatched(self) -> bool {
        self != JoinKind::Inner
    }
    fn right_emits_unmatched(self) -> bool {
        self == JoinKind::Outer
    }
}

/// Values buffered under one key and timestamp, in arrival order (duplicates are kept, as
/// Kafka's join stores retain them). Encoded as a sequence of 4-byte big-endian lengths,
/// each followed by that many bytes of one value.
pub(crate) struct ListSerde<V> {
    inner: SerdeRef<V>,
}

impl<V> ListSerde<V> {
    pub(crate) fn new(inner: SerdeRef<V>) -> Self {
        Self { inner }
    }
}

fn too_large<V>() -> SerdeError {
    SerdeError::Encode {
        format: "list",
        type_name: std::any::type_name::<V>(),
        detail: "value larger than 4 GiB".into(),
    }
}

impl<V: 'static> Serde<Vec<V>> for ListSerde<V> {
    fn serialize_into(&self, values: &Vec<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        for v in values {
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            self.inner.serialize_into(v, out)?;
            let len = u32::try_from(out.len() - at - 4).map_err(|_| too_large::<V>())?;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    fn deserialize(&self, mut bytes: &[u8]) -> Result<Vec<V>, SerdeError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let bad = || SerdeError::Invalid {
                format: "list",
                type_name: std::any::type_name::<V>(),
                detail: "truncated element".into(),
            };
            let (len, rest) = bytes.split_at_checked(4).ok_or_else(bad)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let (item, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
            out.push(self.inner.deserialize(item)?);
            bytes = rest;
        }
        Ok(out)
    }
}

/// The key of the shared store of unmatched records: timestamp, side, key. Its encoding
/// sorts by timestamp first (8 bytes, sign bit flipped, big-endian), then side (right 0,
/// left 1), then the key's bytes, so records whose window closed come first. `key: None`
/// encodes only the prefix (a range bound).
pub(crate) struct OuterKey<K> {
    pub(crate) ts: i64,
    pub(crate) left: bool,
    pub(crate) key: Option<K>,
}

pub(crate) struct OuterKeySerde<K> {
    pub(crate) inner: SerdeRef<K>,
}

fn sortable(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

impl<K: 'static> Serde<OuterKey<K>> for OuterKeySerde<K> {
    fn serialize_into(&self, k: &OuterKey<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&sortable(k.ts));
        out.push(u8::from(k.left));
        match &k.key {
            Some(key) => self.inner.serialize_into(key, out),
            None => Ok(()),
        }
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<OuterKey<K>, SerdeError> {
        if bytes.len() < 9 {
            return Err(SerdeError::WrongSize {
                type_name: "outer join key",
                expected: 9,
                actual: bytes.len(),
            });
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[..8]);
        Ok(OuterKey {
            ts: (u64::from_be_bytes(ts) ^ (1 << 63)) as i64,
            left: bytes[8] == 1,
            key: Some(self.inner.deserialize(&bytes[9..])?),
        })
    }
}

/// The unmatched records of one side under one [`OuterKey`].
pub(crate) enum Unmatched<VL, VR> {
    Left(Vec<VL>),
    Right(Vec<VR>),
}

pub(crate) struct UnmatchedSerde<VL, VR> {
    pub(crate) left: ListSerde<VL>,
    pub(crate) right: ListSerde<VR>,
}

impl<VL: 'static, VR: 'static> Serde<Unmatched<VL, VR>> for UnmatchedSerde<VL, VR> {
    fn serialize_into(&self, v: &Unmatched<VL, VR>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match v {
            Unmatched::Left(l) => {
                out.push(1);
                self.left.serialize_into(l, out)
            }
            Unmatched::Right(r) => {
                out.push(0);
                self.right.serialize_into(r, out)
            }
        }
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Unmatched<VL, VR>, SerdeError> {
        match bytes.split_first() {
            Some((1, rest)) => Ok(Unmatched::Left(self.left.deserialize(rest)?)),
            Some((0, rest)) => Ok(Unmatched::Right(self.right.deserialize(rest)?)),
            _ => Err(SerdeError::Invalid {
                format: "outer join value",
                type_name: "Unmatched",
                detail: "unknown side".into(),
            }),
        }
    }
}

type WinHandle<K, V> = WindowStoreHandle<K, Vec<V>>;
type OuterHandle<K, VL, VR> = KeyValueStoreHandle<OuterKey<K>, Unmatched<VL, VR>>;

/// The names and settings shared by the per-task join nodes.
pub(crate) struct JoinSpec<K, VL, VR, VO> {
    pub(crate) left_store: Arc<str>,
    pub(crate) right_store: Arc<str>,
    pub(crate) outer_store: Option<Arc<str>>,
    pub(crate) windows: JoinWindows,
    pub(crate) kind: JoinKind,
    pub(crate) joiner: JoinFn<K, VL, VR, VO>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) left_serde: SerdeRef<VL>,
    pub(crate) right_serde: SerdeRef<VR>,
}

/// The join node of one task: receives both sides, joins each record with the other
/// side's buffered records, buffers it, and emits unmatched records whose window closed.
pub(crate) struct JoinNode<K, VL, VR, VO> {
    spec: Arc<JoinSpec<K, VL, VR, VO>>,
    left: Option<WinHandle<K, VL>>,
    right: Option<WinHandle<K, VR>>,
    outer: Option<OuterHandle<K, VL, VR>>,
    /// The largest timestamp seen by either side (Kafka's shared `TimeTracker`); after a
    /// restart, the larger observed stream time of the two restored window stores.
    stream_time: i64,
    /// A lower bound of the timestamps in the shared store (`i64::MIN`: unknown, scan).
    min_time: i64,
    /// Per side (right 0, left 1): the largest timestamp put into the shared store, an upper
    /// bound of what it holds (after a restart: its largest key's timestamp).
    outer_max: [i64; 2],
    /// Per side (right 0, left 1): which keys its window store holds, so that a lookup of
    /// a key the side never stored skips the store.
    presence: [Presence; 2],
    children: Children,
}

impl<K, VL, VR, VO> JoinNode<K, VL, VR, VO> {
    pub(crate) fn new(spec: Arc<JoinSpec<K, VL, VR, VO>>, children: Children) -> Self {
        Self {
            spec,
            left: None,
            right: None,
            outer: None,
            stream_time: -1,
            min_time: i64::MIN,
            outer_max: [i64::MAX; 2],
            presence: [Presence::new(i64::MAX), Presence::new(i64::MAX)],
            children,
        }
    }
}

fn open<H: Clone + 'static>(task: &TaskContext, name: &str) -> Result<H> {
    task.typed_store(name, "join")
}

fn used_before_init(what: &str) -> StreamsError {
    StreamsError::Internal(format!("join store `{what}` used before init"))
}

impl<K: Data, VL: Data, VR: Data, VO: Data> NodeOps for JoinNode<K, VL, VR, VO> {
    fn init(&mut self, task: &mut TaskContext) -> Result<()> {
        let left: WinHandle<K, VL> = open(task, &self.spec.left_store)?;
        let right: WinHandle<K, VR> = open(task, &self.spec.right_store)?;
        self.stream_time = left
            .observed_stream_time()
            .max(right.observed_stream_time());
        // What the restored stores hold is not indexed: lookups reaching it read the store.
        self.presence = [
            Presence::new(right.observed_stream_time()),
            Presence::new(left.observed_stream_time()),
        ];
        self.left = Some(left);
        self.right = Some(right);
        if let Some(name) = &self.spec.outer_store {
            let outer: OuterHandle<K, VL, VR> = open(task, name)?;
            // The newest entry bounds what either side holds.
            let newest = outer.last_key()?.map_or(i64::MIN, |k| k.ts);
            self.outer_max = [newest; 2];
            self.outer = Some(outer);
        }
        self.min_time = i64::MIN;
        Ok(())
    }
}

impl<K: Data, VL: Data, VR: Data, VO: Data> Input<K, Side<VL, VR>> for JoinNode<K, VL, VR, VO> {
    fn process(&mut self, record: Record<K, Side<VL, VR>>, task: &mut TaskContext) -> Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        match value {
            Side::Left(v) => self.process_typed::<LeftSide>(key, v, timestamp, headers, task),
            Side::Right(v) => self.process_typed::<RightSide>(key, v, timestamp, headers, task),
        }
    }
}

/// One side's view of the join, so that both sides run the same code.
trait SideOps<K, VL, VR, VO> {
    const LEFT: bool;
    type This: Data;
    type Other: Data;
    fn this_store(node: &JoinNode<K, VL, VR, VO>) -> Option<&WinHandle<K, Self::This>>;
    fn other_store(node: &JoinNode<K, VL, VR, VO>) -> Option<&WinHandle<K, Self::Other>>;
    fn this_serde(spec: &JoinSpec<K, VL, VR, VO>) -> &SerdeRef<Self::This>;
    fn join(
        spec: &JoinSpec<K, VL, VR, VO>,
        key: &K,
        this: &Self::This,
        other: Option<&Self::Other>,
    ) -> VO;
    fn unmatched(values: Vec<Self::This>) -> Unmatched<VL, VR>;
    fn push(u: &mut Unmatched<VL, VR>, v: Self::This);
}

struct LeftSide;
struct RightSide;

impl<K, VL: Data, VR: Data, VO> SideOps<K, VL, VR, VO> for LeftSide {
    const LEFT: bool = true;
    type This = VL;
    type Other = VR;
    fn this_store(node: &JoinNode<K, VL, VR, VO>) -> Option<&WinHandle<K, VL>> {
        node.left.as_ref()
    }
    fn other_store(node: &JoinNode<K, VL, VR, VO>) -> Option<&WinHandle<K, VR>> {
        node.right.as_ref()
    }
    fn this_serde(spec: &JoinSpec<K, VL, VR, VO>) -> &SerdeRef<VL> {
        &spec.left_serde
    }
    fn join(spec: &JoinSpec<K, VL, VR, VO>, key: &K, this: &VL, other: Option<&VR>) -> VO {
        (spec.joiner)(key, Some(this), other)
    }
    fn unmatched(values: Vec<VL>) -> Unmatched<VL, VR> {
        Unmatched::Left(values)
    }
    fn push(u: &mut Unmatched<VL, VR>, v: VL) {
        if let Unmatched::Left(l) = u {
            l.push(v);
        }
    }
}

impl<K, VL: Data, VR: Data, VO> SideOps<K, VL, VR, VO> for RightSide {
    const LEFT: bool = false;
    type This = VR;
    type Other = VL;
    fn this_store(node: &JoinNode<K, VL, VR, VO>) -> Option<&WinHandle<K, VR>> {
        node.right.as_ref()
    }
    fn other_store(node: &JoinNode<K, VL, VR, VO>) -> Option<&WinHandle<K, VL>> {
        node.left.as_ref()
    }
    fn this_serde(spec: &JoinSpec<K, VL, VR, VO>) -> &SerdeRef<VR> {
        &spec.right_serde
    }
    fn join(spec: &JoinSpec<K, VL, VR, VO>, key: &K, this: &VR, other: Option<&VL>) -> VO {
        (spec.joiner)(key, other, Some(this))
    }
    fn unmatched(values: Vec<VR>) -> Unmatched<VL, VR> {
        Unmatched::Right(values)
    }
    fn push(u: &mut Unmatched<VL, VR>, v: VR) {
        if let Unmatched::Right(r) = u {
            r.push(v);
        }
    }
}

impl<K: Data, VL: Data, VR: Data, VO: Data> JoinNode<K, VL, VR, VO> {
    fn process_typed<S: SideOps<K, VL, VR, VO>>(
        &mut self,
        key: K,
        value: S::This,
        ts: i64,
        headers: crate::record::Headers,
        task: &mut TaskContext,
    ) -> Result<()> {
        let spec = self.spec.clone();
        let is_left = S::LEFT;
        let w = spec.windows;
        // This side's window around the record: [ts - before, ts + after] for the left side,
        // mirrored for the right side.
        let (before, after) = if is_left {
            (w.before_ms(), w.after_ms())
        } else {
            (w.after_ms(), w.before_ms())
        };
        let outer = if is_left {
            spec.kind.left_emits_unmatched()
        } else {
            spec.kind.right_emits_unmatched()
        };
        self.stream_time = self.stream_time.max(ts);
        let record = |k: K, v: VO, t: i64| Record {
            key: k,
            value: v,
            timestamp: t,
            headers: headers.clone(),
        };

        let null_key = spec.key_serde.is_null(&key);
        let null_value = S::this_serde(&spec).is_null(&value);
        if outer && null_key && !null_value {
            // KIP-962: a left or outer join passes a null-key record on, unmatched.
            let out = S::join(&spec, &key, &value, None);
            return self.children.forward(task, record(key, out, ts));
        }
        if null_key || null_value {
            task.metrics.dropped_records += 1;
            return Ok(());
        }

        if ts == self.stream_time {
            // Kafka's side processors check the shared store against their own "after":
            // the left side's is the windows' after, the right side's their before.
            self.emit_closed(task, &headers, after)?;
        }

        let from = ts.saturating_sub(before).max(0);
        let to = ts.saturating_add(after).max(0);
        let this_side = usize::from(is_left);
        // The key is encoded once, for both stores (they share its serde) and their
        // indexes.
        let other = S::other_store(self).ok_or_else(|| used_before_init("other"))?;
        let key_bytes = other.encode_key(&key)?;
        let hash = self.presence[this_side].hash(&key_bytes);
        // What the other store still holds: as Kafka's window stores, nothing at or below
        // its observed stream time minus the retention (`getActualFrom`).
        let live_from = other
            .observed_stream_time()
            .saturating_sub(w.retention_ms())
            .saturating_add(1);
        let from = from.max(live_from);
        let partners = if from <= to && self.presence[1 - this_side].may_hold(hash, from, to) {
            other.fetch_range_encoded(&key_bytes, from, to)?
        } else {
            Vec::new()
        };
        if partners.is_empty() {
            if outer {
                match &self.outer {
                    Some(store) if to >= self.stream_time => {
                        // Held until its window closes.
                        self.min_time = self.min_time.min(ts);
                        let k = OuterKey {
                            ts,
                            left: is_left,
                            key: Some(key.clone()),
                        };
                        // Only a timestamp at or below the newest held of this side can
                        // already have an entry: otherwise no read.
                        let side = usize::from(is_left);
                        let existing = if ts > self.outer_max[side] {
                            None
                        } else {
                            store.get(&k)?
                        };
                        self.outer_max[side] = self.outer_max[side].max(ts);
                        let list = match existing {
                            Some(mut u) => {
                                S::push(&mut u, value.clone());
                                u
                            }
                            None => S::unmatched(vec![value.clone()]),
                        };
                        store.put(&k, &list)?;
                    }
                    _ => {
                        // Its window is already behind stream time: no partner can come.
                        let out = S::join(&spec, &key, &value, None);
                        self.children.forward(task, record(key.clone(), out, ts))?;
                    }
                }
            }
        } else {
            // Only a side that emits unmatched records has entries in the shared store.
            let other_emits = if is_left {
                spec.kind.right_emits_unmatched()
            } else {
                spec.kind.left_emits_unmatched()
            };
            let other_side = usize::from(!is_left);
            for (other_ts, values) in partners {
                if let Some(store) = self.outer.as_ref().filter(|_| other_emits) {
                    // The partner is matched now: it never gets a null result (unless it
                    // cannot be there: newer than anything its side put).
                    if other_ts <= self.outer_max[other_side] {
                        store.remove(&OuterKey {
                            ts: other_ts,
                            left: !is_left,
                            key: Some(key.clone()),
                        })?;
                    }
                }
                for o in &values {
                    let out = S::join(&spec, &key, &value, Some(o));
                    self.children
                        .forward(task, record(key.clone(), out, ts.max(other_ts)))?;
                }
            }
        }

        // Buffer the record for the other side (a window behind retention is not stored:
        // it is late, and counted as dropped, like Kafka's expired window-store writes).
        let this = S::this_store(self).ok_or_else(|| used_before_init("this"))?;
        let observed = this.observed_stream_time();
        if ts <= observed.saturating_sub(w.retention_ms()) {
            // Kafka's window store drops a write at or below observed - retention.
            task.metrics.dropped_records += 1;
        } else {
            // Nothing can be stored at a timestamp newer than the store has seen, nor
            // under a key the index says it never stored there: no read.
            let mut list = if ts > observed || !self.presence[this_side].may_hold(hash, ts, ts) {
                Vec::new()
            } else {
                this.fetch_encoded(&key_bytes, ts)?.unwrap_or_default()
            };
            list.push(value);
            this.put_encoded(&key_bytes, Some(&list), ts)?;
            let expired_before = observed
                .max(ts)
                .saturating_sub(w.retention_ms().saturating_add(1));
            self.presence[this_side].put(hash, ts, expired_before);
        }
        Ok(())
    }

    /// Emits (and forgets) the unmatched records whose window has closed: a left record at
    /// `t` once stream time passes `t + after + grace`, a right one at `t + before + grace`.
    /// It looks, as Kafka's `emitNonJoinedOuterRecords` does, only once the earliest
    /// timestamp held plus the arriving side's `this_after` (Kafka's side processors use
    /// their own "after": the windows' after on the left, their before on the right) plus
    /// grace is behind stream time.
    fn emit_closed(
        &mut self,
        task: &mut TaskContext,
        headers: &crate::record::Headers,
        this_after: i64,
    ) -> Result<()> {
        let Some(store) = self.outer.clone() else {
            return Ok(());
        };
        let w = self.spec.windows;
        let st = self.stream_time;
        if self.min_time != i64::MIN
            && self
                .min_time
                .saturating_add(this_after)
                .saturating_add(w.grace_ms())
                >= st
        {
            return Ok(());
        }
        // Every entry at or past `upper` is open on both sides.
        let shortest = w.before_ms().min(w.after_ms());
        // Every closed record has ts + lookback + grace < stream time.
        let last = st
            .saturating_sub(shortest)
            .saturating_sub(w.grace_ms())
            .saturating_sub(1);
        let upper = OuterKey {
            ts: last.saturating_add(1),
            left: false,
            key: None,
        };
        // From the earliest timestamp held (not the store's start: on RocksDB, the deleted
        // entries before it would be skipped one by one on every scan).
        let lower = (self.min_time != i64::MIN).then(|| OuterKey {
            ts: self.min_time,
            left: false,
            key: None,
        });
        let mut min_open = i64::MAX;
        for (k, values) in store.range(lower.as_ref(), Some(&upper))? {
            let lookback = if k.left { w.after_ms() } else { w.before_ms() };
            if k.ts.saturating_add(lookback).saturating_add(w.grace_ms()) >= st {
                min_open = min_open.min(k.ts);
                continue;
            }
            let Some(key) = k.key.as_ref() else {
                continue;
            };
            match &values {
                Unmatched::Left(l) => {
                    for v in l {
                        let out = (self.spec.joiner)(key, Some(v), None);
                        self.forward_unmatched(task, key, out, k.ts, headers)?;
                    }
                }
                Unmatched::Right(r) => {
                    for v in r {
                        let out = (self.spec.joiner)(key, None, Some(v));
                        self.forward_unmatched(task, key, out, k.ts, headers)?;
                    }
                }
            }
            store.remove(&k)?;
        }
        let next = store.first_from(&upper)?.map_or(i64::MAX, |(k, _)| k.ts);
        self.min_time = min_open.min(next);
        Ok(())
    }

    fn forward_unmatched(
        &self,
        task: &mut TaskContext,
        key: &K,
        value: VO,
        ts: i64,
        headers: &crate::record::Headers,
    ) -> Result<()> {
        self.children.forward(
            task,
            Record {
                key: key.clone(),
                value,
                timestamp: ts,
                headers: headers.clone(),
            },
        )
    }
}
