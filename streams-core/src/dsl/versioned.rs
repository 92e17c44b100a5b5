//! Versioned tables (KIP-889, KIP-914) and the stream-table join with a grace period
//! (KIP-923).
//!
//! A table materialized with [`Materialized::as_versioned`] keeps, besides its latest value
//! per key (the store every other operator reads), the history of its values for
//! `history_retention` ms of stream time in a second store, `<name>-versions` (changelogged
//! like the first). An update older than the key's latest value is an out-of-order update:
//! it goes into the history only and is not forwarded (KIP-914). A stream-table join with
//! [`Joined::with_grace_period`](super::Joined::with_grace_period) holds stream records for
//! the grace period in a time-ordered buffer and then joins each with the table version that
//! was valid at the record's timestamp.

use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::node::{Children, Input, NodeBox, NodeBuild, NodeFactory, NodeOps};
use crate::internals::stream_join::JoinFn;
use crate::internals::task::TaskContext;
use crate::record::{Headers, Record};
use crate::serde::{Serde, SerdeError, SerdeRef};
use crate::state::{KeyValueStoreHandle, StoreBuilder, Stores, ValueAndTimestamp};
use crate::topology::NodeKind;

use super::options::Materialized;
use super::table_store::{Shared, TsHandle, add_ts_store, flush_and_forward, forward_flushed};

/// A history entry's key: the record key's bytes (length-prefixed, so that one key's
/// versions are contiguous) and the version's timestamp (sign bit flipped, big-endian, so
/// that versions sort by time). `key: None` encodes only the prefix (a range bound is built
/// from it by the store helpers below).
#[derive(Clone)]
pub(crate) struct VersionKey<K> {
    pub(crate) key: K,
    pub(crate) ts: i64,
}

struct VersionKeySerde<K> {
    inner: SerdeRef<K>,
}

fn bad(detail: &str) -> SerdeError {
    SerdeError::Invalid {
        format: "versioned store",
        type_name: "version",
        detail: detail.to_string(),
    }
}

fn key_prefix<K: 'static>(serde: &SerdeRef<K>, key: &K) -> Result<Vec<u8>, SerdeError> {
    let bytes = serde.serialize(key)?;
    let len = u32::try_from(bytes.len()).map_err(|_| bad("key larger than 4 GiB"))?;
    let mut out = Vec::with_capacity(12 + bytes.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes);
    Ok(out)
}

fn sortable(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

impl<K: 'static> Serde<VersionKey<K>> for VersionKeySerde<K> {
    fn serialize_into(&self, k: &VersionKey<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&key_prefix(&self.inner, &k.key)?);
        out.extend_from_slice(&sortable(k.ts));
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<VersionKey<K>, SerdeError> {
        let (len, rest) = bytes.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (key, ts) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        let ts: [u8; 8] = ts.try_into().map_err(|_| bad("bad timestamp"))?;
        Ok(VersionKey {
            key: self.inner.deserialize(key)?,
            ts: (u64::from_be_bytes(ts) ^ (1 << 63)) as i64,
        })
    }
}

/// A version's value: the value, or `None` for a tombstone (`[flag][value?]`).
struct VersionValueSerde<V> {
    inner: SerdeRef<V>,
}

impl<V: 'static> Serde<Option<V>> for VersionValueSerde<V> {
    fn serialize_into(&self, v: &Option<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match v {
            Some(v) => {
                out.push(1);
                self.inner.serialize_into(v, out)
            }
            None => {
                out.push(0);
                Ok(())
            }
        }
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Option<V>, SerdeError> {
        match bytes.split_first() {
            Some((1, v)) => Ok(Some(self.inner.deserialize(v)?)),
            Some((0, _)) => Ok(None),
            _ => Err(bad("bad version flag")),
        }
    }
}

/// The history of a versioned table: values per (key, timestamp).
pub(crate) type History<K, V> = KeyValueStoreHandle<VersionKey<K>, Option<V>>;

/// The value `key` had at `ts` (the latest version at or before `ts`), if it had one.
pub(crate) fn value_as_of<K: Data, V: Data>(
    history: &History<K, V>,
    key: &K,
    ts: i64,
) -> Result<Option<V>> {
    let from = VersionKey {
        key: key.clone(),
        ts: i64::MIN,
    };
    let to = VersionKey {
        key: key.clone(),
        ts,
    };
    Ok(history
        .reverse_range(Some(&from), Some(&to))?
        .into_iter()
        .next()
        .and_then(|(_, v)| v))
}

/// Records a version and forgets those no query can need any more: versions older than
/// `stream time - retention`, except the last of them (valid at that bound).
fn put_version<K: Data, V: Data>(
    history: &History<K, V>,
    key: &K,
    ts: i64,
    value: Option<V>,
    bound: i64,
) -> Result<()> {
    history.put(
        &VersionKey {
            key: key.clone(),
            ts,
        },
        &value,
    )?;
    let from = VersionKey {
        key: key.clone(),
        ts: i64::MIN,
    };
    let to = VersionKey {
        key: key.clone(),
        ts: bound.saturating_sub(1),
    };
    let old = history.range(Some(&from), Some(&to))?;
    if old.len() > 1 {
        for (k, _) in &old[..old.len() - 1] {
            history.delete(k)?;
        }
    }
    Ok(())
}

/// Adds the history store of a versioned table called `store`; returns its name.
fn add_history_store<K: Data, V: Data>(
    b: &Shared,
    store: &str,
    logging: bool,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> String {
    let name = format!("{store}-versions");
    let key: SerdeRef<VersionKey<K>> = Arc::new(VersionKeySerde { inner: ks });
    let value: SerdeRef<Option<V>> = Arc::new(VersionValueSerde { inner: vs });
    b.borrow_mut().add_store(
        Stores::default_key_value_store_builder(&name, None, key, value)
            .with_logging_enabled(logging)
            .into_spec(),
    );
    name
}

/// The table source node of a versioned table: latest value and history.
struct VersionedSource<K, VIn, V> {
    store_name: Arc<str>,
    history_name: Arc<str>,
    retention: i64,
    to_opt: fn(VIn) -> Option<V>,
    nulls: SerdeRef<V>,
    store: Option<TsHandle<K, V>>,
    history: Option<History<K, V>>,
    /// The largest timestamp seen (for history retention).
    observed: i64,
    children: Children,
}

fn open<H: Clone + 'static>(task: &TaskContext, name: &str) -> Result<H> {
    task.store(name)?
        .typed::<H>()
        .map_err(|_| StreamsError::StoreAccess {
            store: name.to_string(),
            detail: "holds other key/value types than this table expects".into(),
        })
}

impl<K: Data, VIn: Data, V: Data> NodeOps for VersionedSource<K, VIn, V> {
    fn init(&mut self, task: &mut TaskContext) -> Result<()> {
        self.store = Some(open(task, &self.store_name)?);
        self.history = Some(open(task, &self.history_name)?);
        Ok(())
    }
    fn flush(&mut self, task: &mut TaskContext) -> Result<()> {
        match &self.store {
            Some(store) => flush_and_forward(store, &self.children, task),
            None => Ok(()),
        }
    }
}

impl<K: Data, VIn: Data, V: Data> Input<K, VIn> for VersionedSource<K, VIn, V> {
    fn process(&mut self, r: Record<K, VIn>, task: &mut TaskContext) -> Result<()> {
        let (Some(store), Some(history)) = (&self.store, &self.history) else {
            return Err(StreamsError::Internal(format!(
                "versioned table `{}` used before init",
                self.store_name
            )));
        };
        let value = (self.to_opt)(r.value).filter(|v| !self.nulls.is_null(v));
        self.observed = self.observed.max(r.timestamp);
        let bound = self.observed.saturating_sub(self.retention);
        if r.timestamp < bound {
            // Older than the history keeps: nothing to record (Kafka drops it too).
            task.metrics.dropped_records += 1;
            return Ok(());
        }
        // The latest version, a tombstone included (its time counts too).
        let newest = {
            let from = VersionKey {
                key: r.key.clone(),
                ts: i64::MIN,
            };
            let to = VersionKey {
                key: r.key.clone(),
                ts: i64::MAX,
            };
            history
                .reverse_range(Some(&from), Some(&to))?
                .into_iter()
                .next()
                .map(|(k, _)| k.ts)
        };
        put_version(history, &r.key, r.timestamp, value.clone(), bound)?;
        if newest.is_some_and(|latest| r.timestamp < latest) {
            // Out of order (KIP-914): history only; the latest value and downstream stay.
            return Ok(());
        }
        match value {
            Some(v) => store.put(
                &r.key,
                &ValueAndTimestamp {
                    value: v,
                    timestamp: r.timestamp,
                },
            )?,
            None => {
                store.delete(&r.key)?;
            }
        }
        forward_flushed(store, &self.children, task)
    }
}

/// Adds the source node of a versioned table (its latest-value store and its history);
/// returns (node, store, history store).
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_versioned_table_source<K: Data, VIn: Data, V: Data>(
    b: &Shared,
    parent: usize,
    processor_name: Option<&str>,
    materialized: Materialized<K, V>,
    retention: i64,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    to_opt: fn(VIn) -> Option<V>,
) -> (usize, String, String) {
    let store_name = b
        .borrow_mut()
        .name_or(materialized.name.as_deref(), "KTABLE-SOURCE-STATE-STORE-");
    let name = b.borrow_mut().name_or(processor_name, "KTABLE-SOURCE-");
    let history = add_history_store(b, &store_name, materialized.logging, ks.clone(), vs.clone());
    let store = add_ts_store(b, store_name, &materialized, ks, vs.clone());
    let (s, h) = (
        Arc::<str>::from(store.as_str()),
        Arc::<str>::from(history.as_str()),
    );
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, VIn, _>(VersionedSource::<K, VIn, V> {
            store_name: s.clone(),
            history_name: h.clone(),
            retention,
            to_opt,
            nulls: vs.clone(),
            store: None,
            history: None,
            observed: i64::MIN,
            children: nb.children,
        }))
    });
    let node = {
        let mut ib = b.borrow_mut();
        let node = ib.add_node(name, NodeKind::Processor, &[parent], factory);
        ib.connect_store(node, &store);
        ib.connect_store(node, &history);
        node
    };
    (node, store, history)
}

/// A buffered stream record: its key and value, by their serdes
/// (`[4-byte key length][key][value]`).
#[derive(Clone)]
pub(crate) struct Buffered<K, V> {
    key: K,
    value: V,
}

struct BufferedSerde<K, V> {
    key: SerdeRef<K>,
    value: SerdeRef<V>,
}

impl<K: 'static, V: 'static> Serde<Buffered<K, V>> for BufferedSerde<K, V> {
    fn serialize_into(&self, b: &Buffered<K, V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        self.key.serialize_into(&b.key, out)?;
        let len = u32::try_from(out.len() - at - 4).map_err(|_| bad("key larger than 4 GiB"))?;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.value.serialize_into(&b.value, out)
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Buffered<K, V>, SerdeError> {
        let (len, rest) = bytes.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (k, v) = rest.split_at_checked(len).ok_or_else(|| bad("truncated"))?;
        Ok(Buffered {
            key: self.key.deserialize(k)?,
            value: self.value.deserialize(v)?,
        })
    }
}

/// The buffer's key: timestamp (sortable), then a sequence number (arrival order).
#[derive(Clone, Copy)]
pub(crate) struct BufferKey {
    ts: i64,
    seq: u64,
}

struct BufferKeySerde;

impl Serde<BufferKey> for BufferKeySerde {
    fn serialize_into(&self, k: &BufferKey, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&sortable(k.ts));
        out.extend_from_slice(&k.seq.to_be_bytes());
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<BufferKey, SerdeError> {
        if bytes.len() != 16 {
            return Err(bad("buffer key of the wrong size"));
        }
        let mut ts = [0u8; 8];
        let mut seq = [0u8; 8];
        ts.copy_from_slice(&bytes[..8]);
        seq.copy_from_slice(&bytes[8..]);
        Ok(BufferKey {
            ts: (u64::from_be_bytes(ts) ^ (1 << 63)) as i64,
            seq: u64::from_be_bytes(seq),
        })
    }
}

type BufferHandle<K, V> = KeyValueStoreHandle<BufferKey, Buffered<K, V>>;

/// The stream-table join with a grace period: buffers stream records for `grace` of stream
/// time, then joins each with the table version valid at its timestamp.
struct GraceJoin<K, V, VT, VR> {
    buffer_name: Arc<str>,
    history_name: Arc<str>,
    grace: i64,
    left: bool,
    joiner: JoinFn<K, V, VT, VR>,
    key_nulls: SerdeRef<K>,
    value_nulls: SerdeRef<V>,
    buffer: Option<BufferHandle<K, V>>,
    history: Option<History<K, VT>>,
    observed: i64,
    seq: u64,
    children: Children,
}

impl<K: Data, V: Data, VT: Data, VR: Data> NodeOps for GraceJoin<K, V, VT, VR> {
    fn init(&mut self, task: &mut TaskContext) -> Result<()> {
        let buffer: BufferHandle<K, V> = open(task, &self.buffer_name)?;
        // Resume after a restart: stream time and sequence from what is still buffered.
        // (The largest buffered timestamp is a lower bound of the stream time it had.)
        if let Some((k, _)) = buffer.reverse_range(None, None)?.into_iter().next() {
            self.observed = self.observed.max(k.ts);
        }
        self.seq = buffer
            .all()?
            .iter()
            .map(|(k, _)| k.seq + 1)
            .max()
            .unwrap_or(0);
        self.buffer = Some(buffer);
        self.history = Some(open(task, &self.history_name)?);
        Ok(())
    }
}

impl<K: Data, V: Data, VT: Data, VR: Data> GraceJoin<K, V, VT, VR> {
    fn join(
        &self,
        key: K,
        value: V,
        ts: i64,
        headers: Headers,
        task: &mut TaskContext,
    ) -> Result<()> {
        let history = self
            .history
            .as_ref()
            .ok_or_else(|| StreamsError::Internal("grace join used before init".into()))?;
        let found = value_as_of(history, &key, ts)?;
        if self.left || found.is_some() {
            let out = (self.joiner)(&key, Some(&value), found.as_ref());
            self.children.forward(
                task,
                Record {
                    key,
                    value: out,
                    timestamp: ts,
                    headers,
                },
            )?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VT: Data, VR: Data> Input<K, V> for GraceJoin<K, V, VT, VR> {
    fn process(&mut self, r: Record<K, V>, task: &mut TaskContext) -> Result<()> {
        let null_key = self.key_nulls.is_null(&r.key);
        let null_value = self.value_nulls.is_null(&r.value);
        if self.left && null_key && !null_value {
            let out = (self.joiner)(&r.key, Some(&r.value), None);
            return self.children.forward(task, r.with_value(out));
        }
        if null_key || null_value {
            task.metrics.dropped_records += 1;
            return Ok(());
        }
        self.observed = self.observed.max(r.timestamp);
        let bound = self.observed.saturating_sub(self.grace);
        if r.timestamp < bound {
            // Too late to wait for: joined at once (Kafka does the same).
            return self.join(r.key, r.value, r.timestamp, r.headers, task);
        }
        let buffer = self
            .buffer
            .clone()
            .ok_or_else(|| StreamsError::Internal("grace join used before init".into()))?;
        buffer.put(
            &BufferKey {
                ts: r.timestamp,
                seq: self.seq,
            },
            &Buffered {
                key: r.key,
                value: r.value,
            },
        )?;
        self.seq += 1;
        let upto = BufferKey {
            ts: bound,
            seq: u64::MAX,
        };
        for (k, rec) in buffer.range(None, Some(&upto))? {
            buffer.delete(&k)?;
            // Buffered records lose their headers (the buffer keeps key and value only).
            self.join(rec.key, rec.value, k.ts, Headers::default(), task)?;
        }
        Ok(())
    }
}

/// Adds a stream-table join with a grace period against the history store `history`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_grace_join<K: Data, V: Data, VT: Data, VR: Data>(
    b: &Shared,
    name: &str,
    parent: usize,
    history: &str,
    grace: i64,
    left: bool,
    joiner: JoinFn<K, V, VT, VR>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> usize {
    let buffer = format!("{name}-buffer");
    let value: SerdeRef<Buffered<K, V>> = Arc::new(BufferedSerde {
        key: ks.clone(),
        value: vs.clone(),
    });
    let key: SerdeRef<BufferKey> = Arc::new(BufferKeySerde);
    b.borrow_mut()
        .add_store(Stores::default_key_value_store_builder(&buffer, None, key, value).into_spec());
    let (bn, hn) = (Arc::<str>::from(buffer.as_str()), Arc::<str>::from(history));
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, V, _>(GraceJoin::<K, V, VT, VR> {
            buffer_name: bn.clone(),
            history_name: hn.clone(),
            grace,
            left,
            joiner: joiner.clone(),
            key_nulls: ks.clone(),
            value_nulls: vs.clone(),
            buffer: None,
            history: None,
            observed: i64::MIN,
            seq: 0,
            children: nb.children,
        }))
    });
    let mut ib = b.borrow_mut();
    let node = ib.add_node(name.to_string(), NodeKind::Processor, &[parent], factory);
    ib.connect_store(node, &buffer);
    ib.connect_store(node, history);
    node
}
