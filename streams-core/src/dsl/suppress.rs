//! `KTable::suppress`: hold table updates back and emit only final (or rate-limited)
//! results, from a buffer that survives restarts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::Data;
use crate::error::{Result, StreamsError, TopologyError};
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::{Change, Headers, Record};
use crate::serde::{BytesSerde, Serde, SerdeRef};
use crate::state::{KeyValueStoreHandle, StoreBuilder, Stores};

use super::KTable;
use super::builder::{add_store_node, require_serde};
use super::ktable::ChangeSerde;
use super::nodes::Timed;
use super::options::Named;

/// What a full suppression buffer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Emit the oldest buffered results early to make room.
    EmitEarly,
    /// Stop processing with an error (guarantees results are final).
    ShutDown,
}

/// How much a suppression buffer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: Option<usize>,
    max_bytes: Option<usize>,
    when_full: WhenFull,
}

impl BufferConfig {
    /// No bound (memory grows with the number of open windows); never full.
    pub fn unbounded() -> Self {
        Self {
            max_records: None,
            max_bytes: None,
            when_full: WhenFull::ShutDown,
        }
    }
    /// At most `n` buffered keys; emits early when full unless told otherwise.
    pub fn max_records(n: usize) -> Self {
        Self {
            max_records: Some(n),
            max_bytes: None,
            when_full: WhenFull::EmitEarly,
        }
    }
    /// At most `n` bytes of buffered keys and values; emits early when full unless told
    /// otherwise.
    pub fn max_bytes(n: usize) -> Self {
        Self {
            max_records: None,
            max_bytes: Some(n),
            when_full: WhenFull::EmitEarly,
        }
    }
    /// Also bounds the buffer to `n` keys (Kafka's `withMaxRecords`).
    ///
    /// ```
    /// # use streams_core::dsl::BufferConfig;
    /// let both = BufferConfig::max_records(1_000).with_max_bytes(1 << 20);
    /// assert_ne!(both, BufferConfig::max_records(1_000));
    /// ```
    pub fn with_max_records(mut self, n: usize) -> Self {
        self.max_records = Some(n);
        self
    }
    /// Also bounds the buffer to `n` bytes (Kafka's `withMaxBytes`).
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = Some(n);
        self
    }
    /// Removes both bounds, keeping what a full buffer would do (Kafka's `withNoBound`).
    pub fn with_no_bound(mut self) -> Self {
        self.max_records = None;
        self.max_bytes = None;
        self
    }
    /// Stops the application with an error when the buffer is full.
    pub fn shut_down_when_full(mut self) -> Self {
        self.when_full = WhenFull::ShutDown;
        self
    }
    /// Emits the oldest results early when the buffer is full.
    pub fn emit_early_when_full(mut self) -> Self {
        self.when_full = WhenFull::EmitEarly;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    UntilWindowCloses,
    UntilTimeLimit(i64),
}

/// How a table's updates are suppressed (Kafka Streams' `Suppressed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    kind: Kind,
    buffer: BufferConfig,
    name: Option<String>,
}

impl Suppressed {
    /// Exactly one result per window: the final one, emitted once stream time reaches the
    /// window's end plus its grace period (for sessions: end + gap + grace).
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Self {
            kind: Kind::UntilWindowCloses,
            buffer,
            name: None,
        }
    }
    /// Per key, the latest value, emitted once stream time reaches the time of the first
    /// buffered update plus `limit`.
    pub fn until_time_limit(limit: Duration, buffer: BufferConfig) -> Self {
        Self {
            kind: Kind::UntilTimeLimit(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
            buffer,
            name: None,
        }
    }
    /// Names the operator and its buffer store (`<name>-store`, logged to a changelog).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The time at which a buffered key becomes due, from its key and first record time.
type DueFn<K> = Arc<dyn Fn(&K, i64) -> i64 + Send + Sync>;

/// One buffered key.
struct Buffered<K, V> {
    key: K,
    change: Change<V>,
    due: i64,
    /// The time of the first held update (Kafka's buffer time for a time limit).
    since: i64,
    timestamp: i64,
    /// The latest update's headers, forwarded with the entry (as Kafka's buffer keeps the
    /// record context); not in the store, so entries restored after a restart have none.
    headers: Headers,
    bytes: usize,
}

/// The per-task buffer: entries by key bytes, and an index by due time.
struct Buffer<K, V> {
    entries: HashMap<Vec<u8>, Buffered<K, V>>,
    /// (due time, time of the first held update, key bytes): Kafka's buffer is ordered by
    /// buffer time then key; the due time follows it, but saturates for long limits.
    by_due: BTreeSet<(i64, i64, Vec<u8>)>,
    bytes: usize,
    loaded: bool,
}

type BufferStore = KeyValueStoreHandle<Vec<u8>, Vec<u8>>;

/// A suppression node's state: its buffer and how to encode and time its entries.
struct Suppression<K, V> {
    ks: SerdeRef<K>,
    /// The value serde, for Kafka's accounting of a buffered entry's size.
    vs: SerdeRef<V>,
    change_serde: ChangeSerde<V>,
    due: DueFn<K>,
    node_name: String,
    config: BufferConfig,
    buffer: Buffer<K, V>,
    /// The largest timestamp of the records that reached this node: Kafka's suppression
    /// evicts by the time it observed, not by the task's stream time, which runs ahead of
    /// updates still waiting in an upstream record cache.
    observed: i64,
    /// Final results (`until_window_closes`) drop buffered tombstones when they are due
    /// (a session merged into a later one was never a final result).
    drop_tombstones: bool,
    /// This node's entry in the task's suppression metrics, once known (`DEBUG` only).
    metrics_slot: Option<usize>,
}

/// A buffered entry's size as Kafka's `InMemoryTimeOrderedKeyValueChangeBuffer` counts it
/// against `max_bytes` (and reports it in the buffer-size metrics): 8 bytes of buffer time,
/// the key, the `[prior, old, new]` values' bytes (old only when it is not the prior
/// value), and the record context: timestamp and offset (8 bytes each), the topic name,
/// the partition (4) and the headers' keys and values.
fn kafka_entry_size(key: usize, values: [usize; 3], topic: usize, headers: usize) -> usize {
    8 + key + values.iter().sum::<usize>() + 8 + 8 + topic + 4 + headers
}

/// The bytes of the new and prior values in an encoded buffer entry: all of it but the due
/// time and timestamp (16 bytes), the change's flags byte, and the new value's length when
/// both values are there (`ChangeSerde`'s layout).
fn values_len<V>(encoded: &[u8], change: &Change<V>) -> usize {
    let both = change.new.is_some() && change.old.is_some();
    encoded
        .len()
        .saturating_sub(16 + 1 + if both { 4 } else { 0 })
}

impl<K: Data, V: Data> Suppression<K, V> {
    /// Samples the buffer's size for `kafka_streams_stream_state_suppression_buffer_*`,
    /// at the `DEBUG` recording level only.
    #[inline]
    fn record_metrics(&mut self, t: &mut TaskContext) {
        if !t.debug_metrics {
            return;
        }
        let slot = match self.metrics_slot {
            Some(i) => i,
            None => *self
                .metrics_slot
                .insert(t.suppression_slot(&self.node_name)),
        };
        if let Some((_, w)) = t.suppression.get_mut(slot) {
            w.record(self.buffer.bytes, self.buffer.entries.len());
        }
    }

    /// After a restart, reloads the buffer from its (restored) store, once.
    fn load(&mut self, store: &BufferStore) -> Result<()> {
        if self.buffer.loaded {
            return Ok(());
        }
        let node = self.node_name.as_str();
        for (kb, vb) in store.all()? {
            if vb.len() < 16 {
                continue;
            }
            let key = self
                .ks
                .deserialize(&kb)
                .map_err(|e| StreamsError::processor(node, e))?;
            let mut a = [0u8; 8];
            a.copy_from_slice(&vb[..8]);
            let due_at = i64::from_be_bytes(a);
            a.copy_from_slice(&vb[8..16]);
            let ts = i64::from_be_bytes(a);
            let change = self
                .change_serde
                .deserialize(&vb[16..])
                .map_err(|e| StreamsError::processor(node, e))?;
            // Kafka's size with what the store keeps: the record's topic, headers and the
            // latest update's old value are not kept (the old value is the prior one).
            let bytes = kafka_entry_size(kb.len(), [values_len(&vb, &change), 0, 0], 0, 0);
            self.observed = self.observed.max(ts);
            self.buffer.bytes += bytes;
            // The first update's time is not stored: the latest's stands in for it.
            self.buffer.by_due.insert((due_at, ts, kb.clone()));
            self.buffer.entries.insert(
                kb,
                Buffered {
                    key,
                    change,
                    due: due_at,
                    since: ts,
                    timestamp: ts,
                    headers: Headers::default(),
                    bytes,
                },
            );
        }
        self.buffer.loaded = true;
        Ok(())
    }

    /// Buffers the update `r`, replacing the key's previous one.
    fn hold(
        &mut self,
        store: &BufferStore,
        r: Record<K, Change<V>>,
        t: &TaskContext,
    ) -> Result<()> {
        let kb = self
            .ks
            .serialize(&r.key)
            .map_err(|source| StreamsError::Serialization {
                which: "key",
                target: self.node_name.clone(),
                source,
            })?;
        // Kafka's size of the entry: its prior value (the old value of the first buffered
        // update), this update's old value when it is another one (a later update's), its
        // new value, and the record context (topic, headers).
        let context = t.current.as_ref().or(t.last_record.as_ref());
        let topic_len = context.map_or(0, |c| c.topic.len());
        let header_len: usize = r
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        let buffer = &mut self.buffer;
        // Keep the first update's due time; the value is always the latest, and the old
        // value is the one before the first buffered update. A later update's own old value
        // only counts in the size (a value that does not serialize counts 0: the store
        // write reports it).
        let (due_at, since, old, old_len) = match buffer.entries.remove(&kb) {
            Some(prev) => {
                buffer.by_due.remove(&(prev.due, prev.since, kb.clone()));
                buffer.bytes -= prev.bytes;
                let old_len = r.value.old.as_ref().and_then(|v| self.vs.serialize(v).ok());
                let old_len = old_len.map_or(0, |b| b.len());
                (prev.due, prev.since, prev.change.old, old_len)
            }
            None => ((self.due)(&r.key, r.timestamp), r.timestamp, r.value.old, 0),
        };
        let change = Change::new(r.value.new, old);
        let encoded = encode_entry(&self.change_serde, due_at, r.timestamp, &change)?;
        let values = values_len(&encoded, &change);
        let size = kafka_entry_size(kb.len(), [values, old_len, 0], topic_len, header_len);
        store.put(&kb, &encoded)?;
        buffer.by_due.insert((due_at, since, kb.clone()));
        buffer.bytes += size;
        buffer.entries.insert(
            kb,
            Buffered {
                key: r.key,
                change,
                due: due_at,
                since,
                timestamp: r.timestamp,
                headers: r.headers,
                bytes: size,
            },
        );
        Ok(())
    }

    /// Emits what is due at the observed time, then makes room if the buffer is over its
    /// bounds.
    fn emit_due(&mut self, store: &BufferStore, ch: &Children, t: &mut TaskContext) -> Result<()> {
        let (buffer, config) = (&mut self.buffer, &self.config);
        let now = self.observed;
        loop {
            let over = config.max_records.is_some_and(|m| buffer.entries.len() > m)
                || config.max_bytes.is_some_and(|m| buffer.bytes > m);
            let Some((first_due, first_since, first_key)) = buffer.by_due.iter().next().cloned()
            else {
                break;
            };
            if first_due > now && !over {
                break;
            }
            if first_due > now && config.when_full == WhenFull::ShutDown {
                return Err(StreamsError::processor(
                    self.node_name.as_str(),
                    // Kafka's wording (an unbounded limit shows as Long.MAX_VALUE).
                    format!(
                        "{} buffer exceeded its max capacity. Currently [{}/{}] records and [{}/{}] bytes. Raise its BufferConfig bound or use emit_early_when_full",
                        self.node_name,
                        buffer.entries.len(),
                        config.max_records.map_or(i64::MAX as u64, |n| n as u64),
                        buffer.bytes,
                        config.max_bytes.map_or(i64::MAX as u64, |n| n as u64),
                    ),
                ));
            }
            buffer
                .by_due
                .remove(&(first_due, first_since, first_key.clone()));
            if let Some(e) = buffer.entries.remove(&first_key) {
                buffer.bytes -= e.bytes;
                store.delete(&first_key)?;
                if e.change.new.is_none() && self.drop_tombstones {
                    continue;
                }
                ch.forward(
                    t,
                    Record {
                        key: e.key,
                        value: e.change,
                        timestamp: e.timestamp,
                        headers: e.headers,
                    },
                )?;
            }
        }
        Ok(())
    }
}

fn encode_entry<V: 'static>(
    serde: &ChangeSerde<V>,
    due: i64,
    ts: i64,
    c: &Change<V>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&due.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    serde
        .serialize_into(c, &mut out)
        .map_err(|source| StreamsError::Serialization {
            which: "value",
            target: "suppression buffer".into(),
            source,
        })?;
    Ok(out)
}

impl<K: Data, V: Data> KTable<K, V> {
    fn suppress_with(&self, suppressed: Suppressed, due: DueFn<K>) -> KTable<K, V> {
        self.materialize_on_demand();
        let b = self.b.clone();
        let name = b
            .borrow_mut()
            .name_or(suppressed.name.as_deref(), "KTABLE-SUPPRESS-");
        let ks = require_serde(&b, &name, "key", None, self.key_serde.clone());
        let vs = require_serde(&b, &name, "value", None, self.value_serde.clone());
        // Kafka's `KTableImpl#suppress`: `<name>-store` when named, else a generated
        // `KTABLE-SUPPRESS-STATE-STORE-n` (taking the next number).
        let store_name = match &suppressed.name {
            Some(_) => format!("{name}-store"),
            None => b.borrow_mut().generate("KTABLE-SUPPRESS-STATE-STORE-"),
        };
        let bytes: SerdeRef<Vec<u8>> = Arc::new(BytesSerde);
        // The buffer lives in memory; its store is its changelog-backed copy.
        let parts = Stores::key_value_store_builder(
            Stores::in_memory_key_value_store(&store_name),
            bytes.clone(),
            bytes,
        )
        .into_spec();
        b.borrow_mut().add_store(parts);
        let config = suppressed.buffer;
        let drop_tombstones = suppressed.kind == Kind::UntilWindowCloses;
        let node = add_store_node::<K, Change<V>, BufferStore, _, _>(
            &b,
            name.clone(),
            &[self.node],
            &store_name,
            None,
            move || Timed {
                state: Suppression {
                    ks: ks.clone(),
                    vs: vs.clone(),
                    change_serde: ChangeSerde::new(vs.clone()),
                    due: due.clone(),
                    node_name: name.clone(),
                    config,
                    buffer: Buffer {
                        entries: HashMap::new(),
                        by_due: BTreeSet::new(),
                        bytes: 0,
                        loaded: false,
                    },
                    observed: -1,
                    drop_tombstones,
                    metrics_slot: None,
                },
                process: |s: &mut Suppression<K, V>,
                          store: &BufferStore,
                          r: Record<K, Change<V>>,
                          ch: &Children,
                          t: &mut TaskContext| {
                    s.load(store)?;
                    s.observed = s.observed.max(r.timestamp);
                    s.hold(store, r, t)?;
                    s.emit_due(store, ch, t)?;
                    s.record_metrics(t);
                    Ok(())
                },
                advance: |s: &mut Suppression<K, V>,
                          store: &BufferStore,
                          ch: &Children,
                          t: &mut TaskContext| {
                    // Stream time moved on without a record (idle advance): the task
                    // flushed its caches first, so nothing older is still on its way.
                    s.load(store)?;
                    s.observed = s.observed.max(t.stream_time);
                    s.emit_due(store, ch, t)?;
                    s.record_metrics(t);
                    Ok(())
                },
            },
        );
        let mut out = KTable::new(
            self.b.clone(),
            node,
            self.key_serde.clone(),
            self.value_serde.clone(),
            None,
        );
        out.closes_at = self.closes_at.clone();
        out
    }

    /// Holds each key's updates back and emits the latest once `limit` of stream time has
    /// passed since its first held update (see [`Suppressed::until_time_limit`]).
    pub fn suppress_until_time_limit(
        &self,
        limit: Duration,
        buffer: BufferConfig,
        named: Named,
    ) -> KTable<K, V> {
        let mut s = Suppressed::until_time_limit(limit, buffer);
        s.name = named.name;
        let ms = match s.kind {
            Kind::UntilTimeLimit(ms) => ms,
            Kind::UntilWindowCloses => 0,
        };
        self.suppress_with(s, Arc::new(move |_, ts| ts.saturating_add(ms)))
    }

    /// Suppresses the table's updates (Kafka Streams' `KTable#suppress`). With
    /// [`Suppressed::until_time_limit`], any table: per key, the latest value once the limit
    /// has passed since its first held update. With [`Suppressed::until_window_closes`], a
    /// table of a windowed aggregation (or one derived from it by `filter` or `map_values`):
    /// exactly one final result per window; on any other table it is a topology error.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::dsl::{BufferConfig, Suppressed};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("views")
    ///     .group_by_key()
    ///     .count()
    ///     .suppress(Suppressed::until_time_limit(Duration::from_secs(5), BufferConfig::unbounded()))
    ///     .to_stream()
    ///     .to("calm-counts");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let views = driver.input_topic::<String, String>("views");
    /// let out = driver.output_topic::<String, Option<i64>>("calm-counts");
    /// views.pipe_input_at("p".into(), "v".into(), 1_000).unwrap();
    /// views.pipe_input_at("p".into(), "v".into(), 2_000).unwrap();
    /// assert!(out.is_empty());
    /// views.pipe_input_at("q".into(), "v".into(), 6_000).unwrap(); // 5 s after p's first update
    /// assert_eq!(out.read_key_values_to_list().unwrap(), vec![("p".to_string(), Some(2))]);
    /// ```
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::dsl::{BufferConfig, Suppressed};
    /// # use streams_core::window::TimeWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("views")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10)))
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n.unwrap_or(0)))
    ///     .to("final-counts");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let views = driver.input_topic::<String, String>("views");
    /// let out = driver.output_topic::<String, i64>("final-counts");
    /// views.pipe_input_at("p".into(), "v".into(), 1_000).unwrap();
    /// views.pipe_input_at("p".into(), "v".into(), 2_000).unwrap();
    /// views.pipe_input_at("p".into(), "v".into(), 69_999).unwrap(); // 60 s + 10 s grace not reached
    /// assert!(out.is_empty());
    /// views.pipe_input_at("p".into(), "v".into(), 70_000).unwrap(); // the first window closes
    /// assert_eq!(out.read_key_values_to_list().unwrap(), vec![("[p@0/60000]".to_string(), 2)]);
    /// ```
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<K, V> {
        match suppressed.kind {
            Kind::UntilTimeLimit(ms) => {
                self.suppress_with(suppressed, Arc::new(move |_, ts| ts.saturating_add(ms)))
            }
            Kind::UntilWindowCloses => {
                let Some(closes_at) = self.closes_at.clone() else {
                    self.b.borrow_mut().error(TopologyError::InvalidOption {
                        operator: "suppress".into(),
                        detail:
                            "until_window_closes needs a table produced by a windowed aggregation"
                                .into(),
                    });
                    return self.clone();
                };
                self.suppress_with(suppressed, Arc::new(move |k: &K, _| closes_at(k)))
            }
        }
    }
}
