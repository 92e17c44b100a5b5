//! The per-record machinery of versioned tables (KIP-889, KIP-914) and of the stream-table
//! join with a grace period (KIP-923): the history store's key and value encodings, the
//! versioned table's source node (latest value and history, out-of-order updates) and the
//! grace join's node (a time-ordered buffer of stream records, each joined with the table
//! version valid at its timestamp). The DSL (`dsl::versioned`) adds the stores and nodes.

use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::context::TaskContext;
use crate::internals::forward::{TsHandle, flush_and_forward, forward_flushed};
use crate::internals::node::{Children, Input, NodeOps};
use crate::internals::stream_join::JoinFn;
use crate::record::{Headers, Record};
use crate::serde::{Serde, SerdeError, SerdeRef};
use crate::state::{KeyValueStoreHandle, ValueAndTimestamp};

/// A history entry's key: the record key's bytes (length-prefixed, so that one key's
/// versions are contiguous) and the version's timestamp (sign bit flipped, big-endian, so
/// that versions sort by time). A range bound over one key's versions is built from the
/// key's prefix alone ([`key_prefix`]).
#[derive(Clone)]
pub(crate) struct VersionKey<K> {
    pub(crate) key: K,
    pub(crate) ts: i64,
}

/// The serde of [`VersionKey`]s, by the record key's serde.
pub(crate) struct VersionKeySerde<K> {
    pub(crate) inner: SerdeRef<K>,
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
pub(crate) struct VersionValueSerde<V> {
    pub(crate) inner: SerdeRef<V>,
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
    // One reverse seek: the newest version at or before `ts`, not every older one.
    Ok(history.last_in(&from, &to)?.and_then(|(_, v)| v))
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

/// The table source node of a versioned table: latest value and history.
pub(crate) struct VersionedSource<K, VIn, V> {
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

impl<K, VIn, V> VersionedSource<K, VIn, V> {
    /// The source of the versioned table whose latest values are in `store_name` and whose
    /// history (kept for `retention` ms of stream time) is in `history_name`; `to_opt`
    /// turns the input value into the new table value (`None`, or a value `nulls` calls
    /// null, is a tombstone).
    pub(crate) fn new(
        store_name: Arc<str>,
        history_name: Arc<str>,
        retention: i64,
        to_opt: fn(VIn) -> Option<V>,
        nulls: SerdeRef<V>,
        children: Children,
    ) -> Self {
        Self {
            store_name,
            history_name,
            retention,
            to_opt,
            nulls,
            store: None,
            history: None,
            observed: i64::MIN,
            children,
        }
    }
}

/// Opens the store `name` of the task as a handle of type `H`.
fn open<H: Clone + 'static>(task: &TaskContext, name: &str) -> Result<H> {
    task.typed_store(name, "table")
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

/// A buffered stream record: its key and value, by their serdes
/// (`[4-byte key length][key][value]`).
#[derive(Clone)]
pub(crate) struct Buffered<K, V> {
    key: K,
    value: V,
}

/// The serde of [`Buffered`] records, by the stream's key and value serdes.
pub(crate) struct BufferedSerde<K, V> {
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
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

/// The serde of [`BufferKey`]s.
pub(crate) struct BufferKeySerde;

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
pub(crate) struct GraceJoin<K, V, VT, VR> {
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

impl<K, V, VT, VR> GraceJoin<K, V, VT, VR> {
    /// A join that buffers stream records in the store `buffer_name` for `grace` ms of
    /// stream time and joins them with the history store `history_name` (a `left` join
    /// also forwards records the table has no value for). Records whose key or value
    /// `key_nulls`/`value_nulls` call null are not buffered.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        buffer_name: Arc<str>,
        history_name: Arc<str>,
        grace: i64,
        left: bool,
        joiner: JoinFn<K, V, VT, VR>,
        key_nulls: SerdeRef<K>,
        value_nulls: SerdeRef<V>,
        children: Children,
    ) -> Self {
        Self {
            buffer_name,
            history_name,
            grace,
            left,
            joiner,
            key_nulls,
            value_nulls,
            buffer: None,
            history: None,
            observed: i64::MIN,
            seq: 0,
            children,
        }
    }
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
