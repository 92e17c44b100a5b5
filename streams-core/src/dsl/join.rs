//! Stream-stream joins (Kafka Streams' `KStreamKStreamJoin`): both sides buffered in window
//! stores, each arrival joined with every buffered partner in its window, and (for left and
//! outer joins) unmatched records held in a shared store until their window closes.

use std::sync::Arc;

use crate::Data;
use crate::config::DslStore;
use crate::error::{Result, StreamsError};
use crate::internals::node::{Children, Input, NodeBox, NodeBuild, NodeFactory, NodeOps};
use crate::internals::task::TaskContext;
use crate::record::Record;
use crate::serde::{DefaultSerde, Serde, SerdeError, SerdeRef};
use crate::state::{KeyValueStoreHandle, StoreBuilder, Stores, WindowStoreHandle};
use crate::topology::NodeKind;
use crate::window::JoinWindows;

use super::KStream;
use super::builder::{Shared, add_fn_node, require_serde};
use super::kstream::repartition_through;
use super::options::StreamJoined;

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

struct OuterKeySerde<K> {
    inner: SerdeRef<K>,
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

struct UnmatchedSerde<VL, VR> {
    left: ListSerde<VL>,
    right: ListSerde<VR>,
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
struct JoinSpec<K, VL, VR, VO> {
    left_store: Arc<str>,
    right_store: Arc<str>,
    outer_store: Option<Arc<str>>,
    windows: JoinWindows,
    kind: JoinKind,
    joiner: JoinFn<K, VL, VR, VO>,
    key_serde: SerdeRef<K>,
    left_serde: SerdeRef<VL>,
    right_serde: SerdeRef<VR>,
}

/// The join node of one task: receives both sides, joins each record with the other
/// side's buffered records, buffers it, and emits unmatched records whose window closed.
struct JoinNode<K, VL, VR, VO> {
    spec: Arc<JoinSpec<K, VL, VR, VO>>,
    left: Option<WinHandle<K, VL>>,
    right: Option<WinHandle<K, VR>>,
    outer: Option<OuterHandle<K, VL, VR>>,
    /// The largest timestamp seen by either side (Kafka's shared `TimeTracker`); after a
    /// restart, the larger observed stream time of the two restored window stores.
    stream_time: i64,
    /// A lower bound of the timestamps in the shared store (`i64::MIN`: unknown, scan).
    min_time: i64,
    children: Children,
}

fn open<H: Clone + 'static>(task: &TaskContext, name: &str) -> Result<H> {
    task.store(name)?
        .typed::<H>()
        .map_err(|_| StreamsError::StoreAccess {
            store: name.to_string(),
            detail: "holds other key/value types than this join expects".into(),
        })
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
        self.left = Some(left);
        self.right = Some(right);
        if let Some(name) = &self.spec.outer_store {
            self.outer = Some(open(task, name)?);
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
            self.emit_closed(task, &headers)?;
        }

        let from = ts.saturating_sub(before).max(0);
        let to = ts.saturating_add(after).max(0);
        let other = S::other_store(self).ok_or_else(|| used_before_init("other"))?;
        let partners = other.fetch_range(&key, from, to)?;
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
                        let list = match store.get(&k)? {
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
            for (other_ts, values) in partners {
                if let Some(store) = &self.outer {
                    // The partner is matched now: it never gets a null result.
                    store.delete(&OuterKey {
                        ts: other_ts,
                        left: !is_left,
                        key: Some(key.clone()),
                    })?;
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
        if ts < this.observed_stream_time().saturating_sub(w.retention_ms()) {
            task.metrics.dropped_records += 1;
        } else {
            let mut list = this.fetch(&key, ts)?.unwrap_or_default();
            list.push(value);
            this.put(&key, Some(&list), ts)?;
        }
        Ok(())
    }

    /// Emits (and forgets) the unmatched records whose window has closed: a left record at
    /// `t` once stream time passes `t + after + grace`, a right one at `t + before + grace`.
    fn emit_closed(
        &mut self,
        task: &mut TaskContext,
        headers: &crate::record::Headers,
    ) -> Result<()> {
        let Some(store) = self.outer.clone() else {
            return Ok(());
        };
        let w = self.spec.windows;
        let shortest = w.before_ms().min(w.after_ms());
        let st = self.stream_time;
        if self.min_time != i64::MIN
            && self
                .min_time
                .saturating_add(shortest)
                .saturating_add(w.grace_ms())
                >= st
        {
            return Ok(());
        }
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
        let mut min_open = i64::MAX;
        for (k, values) in store.range(None, Some(&upper))? {
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
            store.delete(&k)?;
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

/// The repartition step of a join input whose key was changed upstream: through
/// `<name>-left-repartition` (or `-right-`), named after the join or the upstream node.
pub(crate) fn copartitioned<K: Data, V: Data>(
    b: &Shared,
    stream_node: usize,
    repartition_required: bool,
    join_name: Option<&str>,
    side: &str,
    ks: &SerdeRef<K>,
    vs: &SerdeRef<V>,
) -> usize {
    if !repartition_required {
        return stream_node;
    }
    let base = match join_name {
        Some(n) => format!("{n}-{side}"),
        None => format!("{}-{side}", b.borrow().node_name(stream_node)),
    };
    repartition_through(
        b,
        stream_node,
        &base,
        join_name.is_some(),
        ks.clone(),
        vs.clone(),
        None,
    )
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
        "left",
        &ks,
        &ls,
    );
    let right_in = copartitioned(
        &b,
        right.node,
        right.repartition_required,
        name.as_deref(),
        "right",
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
        Ok(NodeBox::typed::<K, Side<VL, VR>, _>(JoinNode {
            spec: spec.clone(),
            left: None,
            right: None,
            outer: None,
            stream_time: -1,
            min_time: i64::MIN,
            children: nb.children,
        }))
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

/// Stream-stream joins. A record of either side joins every record of the other side with
/// the same key whose timestamp is within the [`JoinWindows`]; the result's timestamp is the
/// larger of the two. Both sides are buffered in window stores for `before + after + grace`;
/// records later than that are not buffered (and counted as dropped) but still join the
/// other side's buffered records. Records with a null key or value are dropped (a left or
/// outer join passes a null-key record on with no partner). Sides whose key was changed are
/// repartitioned first; the topics joined must have the same partition count.
impl<K: Data, V: Data> KStream<K, V> {
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
    pub fn join<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        VO: Data + DefaultSerde,
        VR: Data,
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        self.join_with(other, joiner, windows, defaults(self, other))
    }

    /// [`join`](Self::join) with explicit options.
    pub fn join_with<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Data,
        VR: Data,
        F: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        self.join_with_key(other, move |_, v, o| joiner(v, o), windows, joined)
    }

    /// [`join_with`](Self::join_with) with a joiner that also sees the key (Kafka's
    /// `ValueJoinerWithKey`).
    pub fn join_with_key<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Data,
        VR: Data,
        F: Fn(&K, &V, &VO) -> VR + Send + Sync + 'static,
    {
        let f: JoinFn<K, V, VO, VR> = Arc::new(move |k, v, o| match (v, o) {
            (Some(v), Some(o)) => joiner(k, v, o),
            _ => unreachable!("an inner join calls its joiner with both values"),
        });
        stream_stream_join(self, other, f, windows, joined, JoinKind::Inner)
    }

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
    pub fn left_join<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        VO: Data + DefaultSerde,
        VR: Data,
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        self.left_join_with(other, joiner, windows, defaults(self, other))
    }

    /// [`left_join`](Self::left_join) with explicit options.
    pub fn left_join_with<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Data,
        VR: Data,
        F: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        self.left_join_with_key(other, move |_, v, o| joiner(v, o), windows, joined)
    }

    /// [`left_join_with`](Self::left_join_with) with a joiner that also sees the key.
    pub fn left_join_with_key<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Data,
        VR: Data,
        F: Fn(&K, &V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let f: JoinFn<K, V, VO, VR> = Arc::new(move |k, v, o| match v {
            Some(v) => joiner(k, v, o),
            None => unreachable!("a left join calls its joiner with the left value"),
        });
        stream_stream_join(self, other, f, windows, joined, JoinKind::Left)
    }

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
    pub fn outer_join<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        VO: Data + DefaultSerde,
        VR: Data,
        F: Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        self.outer_join_with(other, joiner, windows, defaults(self, other))
    }

    /// [`outer_join`](Self::outer_join) with explicit options.
    pub fn outer_join_with<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Data,
        VR: Data,
        F: Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        self.outer_join_with_key(other, move |_, v, o| joiner(v, o), windows, joined)
    }

    /// [`outer_join_with`](Self::outer_join_with) with a joiner that also sees the key.
    pub fn outer_join_with_key<VO, VR, F>(
        &self,
        other: &KStream<K, VO>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Data,
        VR: Data,
        F: Fn(&K, Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let f: JoinFn<K, V, VO, VR> = Arc::new(joiner);
        stream_stream_join(self, other, f, windows, joined, JoinKind::Outer)
    }
}
