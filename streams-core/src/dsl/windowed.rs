//! Windowed aggregations: [`TimeWindowedKStream`], from
//! [`KGroupedStream::windowed_by`](crate::dsl::KGroupedStream::windowed_by).

use std::sync::Arc;
use std::time::Duration;

use crate::Data;
use crate::error::{Result, StreamsError, TopologyError};
use crate::internals::node::Children;
use crate::internals::task::{ProducedRecord, TaskContext};
use crate::record::{Change, Record};
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::{StoreBuilder, Stores, TimestampedSerde, ValueAndTimestamp, WindowStoreHandle};
use crate::window::{TimeWindowedSerde, TimeWindows, Window, Windowed};

use super::builder::{Aggregation, add_store_node, aggregation, require_serde};
use super::options::{Materialized, Produced};
use super::{KGroupedStream, KTable};

/// Kafka Streams' default retention of window stores: one day (or size + grace if larger).
const DEFAULT_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

type WinHandle<K, VA> = WindowStoreHandle<K, ValueAndTimestamp<VA>>;
type WinStep<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// A grouped stream cut into time windows; aggregations give a table keyed by
/// [`Windowed<K>`].
///
/// Each record updates every window that contains it (one for tumbling windows, size /
/// advance for hopping ones). A record for a window that has closed — its end plus grace is
/// at or before the task's stream time — is dropped and counted in
/// `TaskMetrics::dropped_records`. Updates are forwarded as they happen (window stores have
/// no record cache yet).
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
    emit: EmitStrategy,
    late: Option<LateOutput<K, V>>,
}

/// Where records too late for every window they belong to are written instead of being
/// lost: a topic, with the serdes to write it.
struct LateOutput<K, V> {
    topic: Arc<str>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> Clone for LateOutput<K, V> {
    fn clone(&self) -> Self {
        Self {
            topic: self.topic.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

/// When a windowed aggregation forwards results (Kafka Streams' `EmitStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitStrategy {
    /// An update per input record (the default).
    #[default]
    OnWindowUpdate,
    /// Only final results, read from the window store once a window closes (end + grace
    /// reached by stream time); nothing is buffered besides the store itself.
    OnWindowClose,
}

impl<K, V> std::fmt::Debug for TimeWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindowedKStream")
            .field("windows", &self.windows)
            .finish()
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Cuts the grouped stream into time windows (tumbling or hopping).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::TimeWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("views")   // user -> page
    ///     .group_by(|_, page| page.clone())
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n.unwrap_or(0)))
    ///     .to("views-per-minute");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let views = driver.input_topic::<String, String>("views");
    /// views.pipe_input_at("u1".into(), "/a".into(), 10_000).unwrap();
    /// views.pipe_input_at("u2".into(), "/a".into(), 59_999).unwrap();
    /// views.pipe_input_at("u3".into(), "/a".into(), 60_000).unwrap(); // a window's end is exclusive
    /// let out = driver.output_topic::<String, i64>("views-per-minute").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![
    ///     ("[/a@0/60000]".to_string(), 1),
    ///     ("[/a@0/60000]".to_string(), 2),
    ///     ("[/a@60000/120000]".to_string(), 1),
    /// ]);
    /// ```
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        if let Some(problem) = windows.problem() {
            self.builder()
                .borrow_mut()
                .error(TopologyError::InvalidOption {
                    operator: "windowed_by".into(),
                    detail: problem,
                });
        }
        TimeWindowedKStream {
            emit: EmitStrategy::default(),
            late: None,
            grouped: KGroupedStream::new(
                self.stream().clone(),
                self.name(),
                self.key_serde(),
                self.value_serde(),
                self.repartition_required(),
            ),
            windows,
        }
    }
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Chooses when results are forwarded. Default: [`EmitStrategy::OnWindowUpdate`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::dsl::EmitStrategy;
    /// # use streams_core::window::TimeWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("views")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
    ///     .emit_strategy(EmitStrategy::OnWindowClose)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n.unwrap_or(0)))
    ///     .to("final");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let views = driver.input_topic::<String, String>("views");
    /// for ts in [1_000, 2_000, 10_000] { views.pipe_input_at("p".into(), "v".into(), ts).unwrap(); }
    /// let out = driver.output_topic::<String, i64>("final").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![("[p@0/10000]".to_string(), 2)]);
    /// ```
    pub fn emit_strategy(mut self, emit: EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    /// Beyond Kafka Streams: writes records that are too late for every window they belong
    /// to (their windows closed) to `topic` — a dead-letter or side topic — instead of only
    /// counting them. They still count in `dropped_records`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::TimeWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("views")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
    ///     .late_records_to("late-views", Produced::new())
    ///     .count();
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let views = driver.input_topic::<String, String>("views");
    /// views.pipe_input_at("p".into(), "on time".into(), 15_000).unwrap();
    /// views.pipe_input_at("p".into(), "too late".into(), 5_000).unwrap(); // [0, 10) closed
    /// let late = driver.output_topic::<String, String>("late-views").read_records_to_list().unwrap();
    /// assert_eq!((late[0].value.as_str(), late[0].timestamp), ("too late", 5_000));
    /// assert_eq!(driver.metrics().dropped_records, 1);
    /// ```
    pub fn late_records_to(mut self, topic: &str, produced: Produced<K, V>) -> Self {
        let b = self.grouped.builder().clone();
        let op = format!("late_records_to({topic})");
        let key_serde = require_serde(&b, &op, "key", produced.key_serde, self.grouped.key_serde());
        let value_serde = require_serde(
            &b,
            &op,
            "value",
            produced.value_serde,
            self.grouped.value_serde(),
        );
        self.late = Some(LateOutput {
            topic: Arc::from(topic),
            key_serde,
            value_serde,
        });
        self
    }

    /// Counts records per key and window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::new())
    }

    /// Counts records per key and window into a store with explicit options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let step: WinStep<K, V, i64> = Arc::new(|_, _, n| n.unwrap_or(0) + 1);
        self.aggregate_impl(
            materialized,
            Some(i64::default_serde()),
            "KSTREAM-AGGREGATE-",
            step,
        )
    }

    /// Combines the values of each key and window with `reducer`.
    pub fn reduce<F>(&self, reducer: F) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        self.reduce_with(reducer, Materialized::new())
    }

    /// [`reduce`](Self::reduce) into a store with explicit options.
    pub fn reduce_with<F>(
        &self,
        reducer: F,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let step: WinStep<K, V, V> = Arc::new(move |_, v, agg| match agg {
            None => v,
            Some(a) => reducer(a, v),
        });
        let vs = self.grouped.value_serde();
        self.aggregate_impl(materialized, vs, "KSTREAM-REDUCE-", step)
    }

    /// Folds the values of each key and window into an aggregate starting at
    /// `initializer()`.
    pub fn aggregate<VA: Data + DefaultSerde, I, A>(
        &self,
        initializer: I,
        aggregator: A,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        self.aggregate_with(
            initializer,
            aggregator,
            Materialized::new().with_value_serde(VA::default_serde()),
        )
    }

    /// [`aggregate`](Self::aggregate) into a store with explicit options.
    pub fn aggregate_with<VA: Data, I, A>(
        &self,
        initializer: I,
        aggregator: A,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        let step: WinStep<K, V, VA> =
            Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(&initializer)));
        self.aggregate_impl(materialized, None, "KSTREAM-AGGREGATE-", step)
    }

    fn aggregate_impl<VA: Data>(
        &self,
        materialized: Materialized<K, VA>,
        default_value_serde: Option<SerdeRef<VA>>,
        prefix: &str,
        step: WinStep<K, V, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.builder().clone();
        let Aggregation {
            store: store_name,
            node: name,
            key_serde: ks,
            value_serde: vas,
        } = aggregation(
            &b,
            &materialized,
            prefix,
            self.grouped.key_serde(),
            default_value_serde,
        );
        let parent = self.grouped.upstream(&store_name, &ks);
        let windows = self.windows;
        let emit = self.emit;
        let late = self.late.clone();
        let retention = materialized
            .retention
            .unwrap_or(DEFAULT_RETENTION_MS)
            .max(windows.size_ms().saturating_add(windows.grace_ms()));
        let ts_serde: SerdeRef<ValueAndTimestamp<VA>> =
            Arc::new(TimestampedSerde::new(vas.clone()));
        let builder = Stores::default_window_store_builder(
            &store_name,
            retention,
            windows.size_ms(),
            ks.clone(),
            ts_serde,
        )
        .with_logging_enabled(materialized.logging)
        .with_caching_enabled(materialized.caching);
        let parts = builder.into_spec();
        let store = parts.name.clone();
        b.borrow_mut().add_store(parts);
        let node = add_store_node::<K, V, WinHandle<K, VA>, _, _>(
            &b,
            name,
            &[parent],
            &store,
            Some(if emit == EmitStrategy::OnWindowUpdate {
                flush_and_forward_windows::<K, VA>
            } else {
                flush_windows_quietly::<K, VA>
            }),
            move || {
                let step = step.clone();
                let late = late.clone();
                // The close time up to which final results were emitted (OnWindowClose).
                let mut emitted_until = i64::MIN;
                move |store: &WinHandle<K, VA>,
                      r: Record<K, V>,
                      ch: &Children,
                      t: &mut TaskContext|
                      -> Result<()> {
                    if store.is_null_key(&r.key) {
                        t.metrics.dropped_records += 1;
                        return Ok(());
                    }
                    let close_time = t.stream_time.saturating_sub(windows.grace_ms());
                    let mut on_time = false;
                    for start in windows.window_starts(r.timestamp) {
                        let end = start.saturating_add(windows.size_ms());
                        if end <= close_time {
                            // The window has closed: a late record for it is dropped.
                            t.metrics.dropped_records += 1;
                            continue;
                        }
                        on_time = true;
                        let old = store.fetch(&r.key, start)?;
                        let (old_value, ts) = match old {
                            Some(o) => (Some(o.value), o.timestamp.max(r.timestamp)),
                            None => (None, r.timestamp),
                        };
                        let new = step(&r.key, r.value.clone(), old_value.clone());
                        store.put(
                            &r.key,
                            Some(&ValueAndTimestamp {
                                value: new.clone(),
                                timestamp: ts,
                            }),
                            start,
                        )?;
                    }
                    // Updates reach downstream when they leave the record cache (at once
                    // with caching off); final results come from the store instead.
                    if emit == EmitStrategy::OnWindowUpdate {
                        forward_flushed_windows(store, ch, t)?;
                    } else {
                        store.take_flushed()?;
                    }
                    if !on_time && let Some(late) = &late {
                        let ser = |which, e| StreamsError::Serialization {
                            which,
                            target: late.topic.to_string(),
                            source: e,
                        };
                        t.output.push(ProducedRecord {
                            topic: late.topic.clone(),
                            partition: None,
                            key: late
                                .key_serde
                                .serialize_nullable(&r.key)
                                .map_err(|e| ser("key", e))?,
                            value: late
                                .value_serde
                                .serialize_nullable(&r.value)
                                .map_err(|e| ser("value", e))?,
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        });
                    }
                    if emit == EmitStrategy::OnWindowClose && close_time > emitted_until {
                        // Windows whose end is in (emitted_until, close_time] just closed.
                        let to = close_time.saturating_sub(windows.size_ms());
                        let from = emitted_until
                            .saturating_sub(windows.size_ms())
                            .saturating_add(1)
                            .max(0);
                        if to >= from {
                            for (key, v) in store.fetch_all(from, to)? {
                                ch.forward(
                                    t,
                                    Record::new(key, Change::new(Some(v.value), None), v.timestamp),
                                )?;
                            }
                        }
                        emitted_until = close_time;
                    }
                    Ok(())
                }
            },
        );
        let wks: SerdeRef<Windowed<K>> =
            Arc::new(TimeWindowedSerde::new(ks, Some(windows.size_ms())));
        KTable::new(b.clone(), node, Some(wks), Some(vas), Some(store))
            .closing_after(windows.grace_ms())
    }
}

/// Forwards the window updates that left `store`'s cache as table changes.
fn forward_flushed_windows<K: Data, VA: Data>(
    store: &WinHandle<K, VA>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    for (key, new, old) in store.take_flushed()? {
        if new.is_none() && old.is_none() {
            continue;
        }
        let ts = new.as_ref().map_or(t.current_timestamp, |v| v.timestamp);
        ch.forward(
            t,
            Record::new(
                key,
                Change::new(new.map(|v| v.value), old.map(|v| v.value)),
                ts,
            ),
        )?;
    }
    Ok(())
}

/// Forwards the session updates that left `store`'s cache, timestamped with the session
/// end; an entry that never reached the store and is gone again is not forwarded.
fn forward_flushed_sessions<K: Data, VA: Data>(
    store: &SessHandle<K, VA>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    for (key, new, old) in store.take_flushed()? {
        if new.is_none() && old.is_none() {
            continue;
        }
        let end = key.window.end;
        ch.forward(t, Record::new(key, Change::new(new, old), end))?;
    }
    Ok(())
}

/// On commit: writes the session cache down and forwards what left it.
fn flush_and_forward_sessions<K: Data, VA: Data>(
    store: &SessHandle<K, VA>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    store.flush_cache()?;
    forward_flushed_sessions(store, ch, t)
}

/// On commit: writes the cache down and forwards what left it.
fn flush_and_forward_windows<K: Data, VA: Data>(
    store: &WinHandle<K, VA>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    store.flush_cache()?;
    forward_flushed_windows(store, ch, t)
}

/// On commit with emit-on-close: writes the cache down; updates are not forwarded.
fn flush_windows_quietly<K: Data, VA: Data>(
    store: &WinHandle<K, VA>,
    _ch: &Children,
    _t: &mut TaskContext,
) -> Result<()> {
    store.flush_cache()?;
    store.take_flushed()?;
    Ok(())
}

impl<K, V> Materialized<K, V> {
    /// How long a window store keeps windows, in stream time. Default: one day, and never
    /// less than window size plus grace.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        self
    }
}

type SessHandle<K, VA> = crate::state::SessionStoreHandle<K, VA>;
type SessStep<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;
type SessMerger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

/// A grouped stream cut into session windows; aggregations give a table keyed by
/// [`Windowed<K>`] whose window is the session `[first record, last record]`.
///
/// A record merges every session of its key that ends at most `gap` before it or starts at
/// most `gap` after it. The merged sessions are forwarded as tombstones and the merged
/// result as an update, with the session end as timestamp. A record whose merged session
/// ended more than `gap + grace` before stream time is dropped and counted.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: crate::window::SessionWindows,
}

impl<K, V> std::fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWindowedKStream")
            .field("windows", &self.windows)
            .finish()
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Cuts the grouped stream into sessions of activity.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SessionWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(30)))
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n))
    ///     .to("sessions");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("u1".into(), "a".into(), 0).unwrap();
    /// clicks.pipe_input_at("u1".into(), "b".into(), 30_000).unwrap(); // exactly the gap: merges
    /// let out = driver.output_topic::<String, Option<i64>>("sessions").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![
    ///     ("[u1@0/0]".to_string(), Some(1)),
    ///     ("[u1@0/0]".to_string(), None),          // the replaced session
    ///     ("[u1@0/30000]".to_string(), Some(2)),   // the merged one
    /// ]);
    /// ```
    pub fn windowed_by_session(
        &self,
        windows: crate::window::SessionWindows,
    ) -> SessionWindowedKStream<K, V> {
        if let Some(problem) = windows.problem() {
            self.builder()
                .borrow_mut()
                .error(TopologyError::InvalidOption {
                    operator: "windowed_by_session".into(),
                    detail: problem,
                });
        }
        SessionWindowedKStream {
            grouped: KGroupedStream::new(
                self.stream().clone(),
                self.name(),
                self.key_serde(),
                self.value_serde(),
                self.repartition_required(),
            ),
            windows,
        }
    }
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Counts records per session.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::new())
    }

    /// Counts records per session into a store with explicit options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_impl(
            materialized,
            Some(i64::default_serde()),
            Arc::new(|| 0),
            Arc::new(|_, _, n| n + 1),
            Arc::new(|_, a, b| a + b),
        )
    }

    /// Folds each session's values into an aggregate: `aggregator` adds a record,
    /// `merger` combines the aggregates of two sessions that a record joins.
    pub fn aggregate_with<VA: Data, I, A, M>(
        &self,
        initializer: I,
        aggregator: A,
        merger: M,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    {
        self.aggregate_impl(
            materialized,
            None,
            Arc::new(initializer),
            Arc::new(aggregator),
            Arc::new(merger),
        )
    }

    fn aggregate_impl<VA: Data>(
        &self,
        materialized: Materialized<K, VA>,
        default_value_serde: Option<SerdeRef<VA>>,
        init: Arc<dyn Fn() -> VA + Send + Sync>,
        step: SessStep<K, V, VA>,
        merger: SessMerger<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.builder().clone();
        let Aggregation {
            store: store_name,
            node: name,
            key_serde: ks,
            value_serde: vas,
        } = aggregation(
            &b,
            &materialized,
            "KSTREAM-SESSION-AGGREGATE-",
            self.grouped.key_serde(),
            default_value_serde,
        );
        let parent = self.grouped.upstream(&store_name, &ks);
        let windows = self.windows;
        let retention = materialized
            .retention
            .unwrap_or(DEFAULT_RETENTION_MS)
            .max(windows.gap_ms().saturating_add(windows.grace_ms()));
        let builder =
            Stores::default_session_store_builder(&store_name, retention, ks.clone(), vas.clone())
                .with_logging_enabled(materialized.logging)
                .with_caching_enabled(materialized.caching);
        let parts = builder.into_spec();
        let store = parts.name.clone();
        b.borrow_mut().add_store(parts);
        let node = add_store_node::<K, V, SessHandle<K, VA>, _, _>(
            &b,
            name,
            &[parent],
            &store,
            Some(flush_and_forward_sessions::<K, VA>),
            move || {
                let (init, step, merger) = (init.clone(), step.clone(), merger.clone());
                move |store: &SessHandle<K, VA>,
                      r: Record<K, V>,
                      ch: &Children,
                      t: &mut TaskContext|
                      -> Result<()> {
                    if store.is_null_key(&r.key) {
                        t.metrics.dropped_records += 1;
                        return Ok(());
                    }
                    let ts = r.timestamp;
                    let close_time = t
                        .stream_time
                        .saturating_sub(windows.grace_ms())
                        .saturating_sub(windows.gap_ms());
                    let merged = store.find_sessions(
                        &r.key,
                        ts - windows.gap_ms(),
                        ts + windows.gap_ms(),
                    )?;
                    let mut window = Window { start: ts, end: ts };
                    let mut agg = init();
                    for (w, v) in &merged {
                        agg = merger(&r.key, agg, v.clone());
                        window.start = window.start.min(w.window.start);
                        window.end = window.end.max(w.window.end);
                    }
                    if window.end < close_time {
                        t.metrics.dropped_records += 1;
                        return Ok(());
                    }
                    if window != (Window { start: ts, end: ts }) {
                        for (w, _) in merged {
                            store.remove(&w)?;
                        }
                    }
                    let agg = step(&r.key, r.value, agg);
                    store.put(&Windowed { key: r.key, window }, &agg)?;
                    // Tombstones of the replaced sessions, then the merged one, reach
                    // downstream as they leave the record cache (at once with caching off).
                    forward_flushed_sessions(store, ch, t)
                }
            },
        );
        let wks: SerdeRef<Windowed<K>> = Arc::new(crate::window::SessionWindowedSerde::new(ks));
        KTable::new(b.clone(), node, Some(wks), Some(vas), Some(store))
            .closing_after(windows.gap_ms().saturating_add(windows.grace_ms()))
    }
}
