//! Windowed aggregations: [`TimeWindowedKStream`], from
//! [`KGroupedStream::windowed_by`](crate::dsl::KGroupedStream::windowed_by).

use std::sync::Arc;
use std::time::Duration;

use crate::Data;
use crate::error::{Result, TopologyError};
use crate::internals::forward::{flush_quietly, is_null_value};
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::record::Record;
use crate::serde::{DefaultSerde, SerdeRef};
use crate::window::{SlidingWindows, TimeWindowedSerde, TimeWindows, Windowed};

use super::aggregate_methods::{AggStep, aggregate_methods};
use super::builder::{add_store_node, aggregation, flush_and_forward, require_serde};
use super::nodes::Timed;
use super::options::{Materialized, Produced};
use super::table_store::{add_session_store, add_window_store};
use super::{KGroupedStream, KTable};

pub(crate) use crate::internals::window_aggregate::*;

/// A grouped stream cut into time windows; aggregations give a table keyed by
/// [`Windowed<K>`].
///
/// Each record updates every window that contains it (one for tumbling windows, size /
/// advance for hopping ones). A record for a window that has closed — its end plus grace is
/// at or before the aggregation's stream time, the largest timestamp of the records that
/// reached it (Kafka's per-processor observed stream time) — is dropped and counted in
/// `TaskMetrics::dropped_records`. Updates go downstream as they leave the window store's
/// record cache (at a commit, or when the cache is full), or at once with caching disabled.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    spec: WindowSpec,
    emit: EmitStrategy,
    late: Option<LateOutput<K, V>>,
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

debug_fields!(TimeWindowedKStream<K, V>, s => { "windows": s.spec });

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
            grouped: self.copy(),
            spec: WindowSpec::Time(windows),
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

    fn value_serde(&self) -> Option<SerdeRef<V>> {
        self.grouped.value_serde()
    }

    fn aggregate_impl<VA: Data>(
        &self,
        materialized: Materialized<K, VA>,
        default_value_serde: Option<SerdeRef<VA>>,
        prefix: &str,
        step: AggStep<K, V, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.builder().clone();
        let carried_key = self.grouped.key_serde();
        let agg = aggregation(&b, &materialized, prefix, carried_key, default_value_serde);
        let (store_name, name, ks, vas) = (agg.store, agg.node, agg.key_serde, agg.value_serde);
        let parent = self.grouped.upstream(&store_name, &ks);
        let spec = self.spec;
        let (size, grace) = (spec.size_ms(), spec.grace_ms());
        let emit = self.emit;
        let late = self.late.clone();
        let store = add_window_store(&b, &store_name, spec, &materialized, &ks, &vas);
        let nulls = spec.value_nulls(self.value_serde());
        let node = add_store_node::<K, V, WinHandle<K, VA>, _, _>(
            &b,
            name,
            &[parent],
            &store,
            Some(if emit == EmitStrategy::OnWindowUpdate {
                flush_and_forward::<WinHandle<K, VA>>
            } else {
                flush_quietly::<WinHandle<K, VA>>
            }),
            move || Timed {
                state: WindowClock::default(),
                process: {
                    let (step, late, nulls) = (step.clone(), late.clone(), nulls.clone());
                    move |clock: &mut WindowClock,
                          store: &WinHandle<K, VA>,
                          r: Record<K, V>,
                          ch: &Children,
                          t: &mut TaskContext|
                          -> Result<()> {
                        let null =
                            store.is_null_key(&r.key) || is_null_value(nulls.as_ref(), &r.value);
                        let Some(now) = clock.admit(null, r.timestamp, t) else {
                            return Ok(());
                        };
                        let close_time = now.saturating_sub(grace);
                        if emit == EmitStrategy::OnWindowClose {
                            // Before this record's windows are written: a window it closes
                            // may leave the store's retention (window size plus grace by
                            // default) once the store's time moves to this record's window.
                            // This record joins no closed window, so nothing is missed.
                            emit_closed(&spec, clock, store, ch, t)?;
                        }
                        let on_time = match spec {
                            WindowSpec::Time(windows) => {
                                aggregate_time(&windows, store, &step, &r, close_time, t)?
                            }
                            WindowSpec::Sliding(windows) => {
                                aggregate_sliding(&windows, store, &step, &r, close_time, t)?
                            }
                        };
                        // Updates reach downstream when they leave the record cache (at
                        // once with caching off); final results come from the store instead.
                        if emit == EmitStrategy::OnWindowUpdate {
                            forward_flushed_windows(store, ch, t)?;
                        } else {
                            store.take_flushed()?;
                        }
                        if !on_time && let Some(late) = &late {
                            late.write(&r, t)?;
                        }
                        Ok(())
                    }
                },
                advance: move |clock: &mut WindowClock,
                               store: &WinHandle<K, VA>,
                               ch: &Children,
                               t: &mut TaskContext| {
                    // Stream time moved on without a record (idle advance).
                    clock.observe(t.stream_time);
                    if emit == EmitStrategy::OnWindowClose {
                        emit_closed(&spec, clock, store, ch, t)?;
                    }
                    Ok(())
                },
            },
        );
        let wks: SerdeRef<Windowed<K>> = Arc::new(TimeWindowedSerde::new(ks, Some(size)));
        KTable::new(b.clone(), node, Some(wks), Some(vas), Some(store)).closing_after(grace)
    }
}

aggregate_methods! {
    impl TimeWindowedKStream -> KTable<Windowed<K>, _>, per "key and window";
    count {}
    reduce {}
    aggregate {}
}

/// A grouped stream aggregated over sliding windows, from
/// [`KGroupedStream::windowed_by_sliding`]; aggregations give a table keyed by
/// [`Windowed<K>`] whose windows are `[start, start + d]`, both ends inclusive. A store
/// retention given with [`Materialized::with_retention`] must be at least twice the time
/// difference plus grace.
pub struct SlidingWindowedKStream<K, V>(TimeWindowedKStream<K, V>);

debug_fields!(SlidingWindowedKStream<K, V>, s => { "windows": s.0.spec });

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Aggregates over sliding windows (Kafka Streams' `windowedBy(SlidingWindows)`).
    ///
    /// A record at 8000 with a 5-second difference makes the window [3000, 8000]; a
    /// record at 12000 then falls into the first record's right window [8001, 13001] and
    /// gets its own left window [7000, 12000], which holds both records:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SlidingWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_secs(5)))
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n.unwrap_or(0)))
    ///     .to("clicks-in-5s");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("u".into(), "a".into(), 8_000).unwrap();
    /// clicks.pipe_input_at("u".into(), "b".into(), 12_000).unwrap();
    /// let out = driver.output_topic::<String, i64>("clicks-in-5s").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![
    ///     ("[u@3000/8000]".to_string(), 1),
    ///     ("[u@8001/13001]".to_string(), 1),
    ///     ("[u@7000/12000]".to_string(), 2),
    /// ]);
    /// ```
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream(TimeWindowedKStream {
            emit: EmitStrategy::default(),
            late: None,
            grouped: self.copy(),
            spec: WindowSpec::Sliding(windows),
        })
    }
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    /// Chooses when results are forwarded; see [`TimeWindowedKStream::emit_strategy`].
    pub fn emit_strategy(self, emit: EmitStrategy) -> Self {
        Self(self.0.emit_strategy(emit))
    }

    /// Writes records too late for every window to `topic`; see
    /// [`TimeWindowedKStream::late_records_to`].
    pub fn late_records_to(self, topic: &str, produced: Produced<K, V>) -> Self {
        Self(self.0.late_records_to(topic, produced))
    }
}

aggregate_methods! {
    impl SlidingWindowedKStream via .0 -> KTable<Windowed<K>, _>, per "key and sliding window";
    count {}
    reduce {}
    aggregate {}
}

impl<K, V> Materialized<K, V> {
    /// How long a window or session store keeps windows, in stream time. Default, as in
    /// Kafka Streams 3.x: the least that every window needs — window size plus grace
    /// (sliding windows: twice the time difference plus grace; sessions: inactivity gap plus
    /// grace); a shorter retention is an error at `build()`. Interactive queries of older
    /// windows need a longer one.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        self
    }
}

/// A grouped stream cut into session windows; aggregations give a table keyed by
/// [`Windowed<K>`] whose window is the session `[first record, last record]`.
///
/// A record merges every session of its key that ends at most `gap` before it or starts at
/// most `gap` after it. The merged sessions are forwarded as tombstones and the merged
/// result as an update, with the session end as timestamp. A record whose merged session
/// ended more than `gap + grace` before the aggregation's stream time (the largest
/// timestamp of the records that reached it) is dropped and counted.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: crate::window::SessionWindows,
    emit: EmitStrategy,
}

debug_fields!(SessionWindowedKStream<K, V>, s => { "windows": s.windows });

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
            grouped: self.copy(),
            windows,
            emit: EmitStrategy::default(),
        }
    }
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Chooses when results are forwarded (Kafka Streams' `emitStrategy`). Default:
    /// [`EmitStrategy::OnWindowUpdate`], an update (and tombstones of merged sessions) per
    /// record. With [`EmitStrategy::OnWindowClose`], each session once, when it closes —
    /// stream time passes its end plus gap plus grace —, read from the store, timestamped
    /// with its end; sessions merged away before closing are never forwarded.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::dsl::EmitStrategy;
    /// # use streams_core::window::SessionWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(10)))
    ///     .emit_strategy(EmitStrategy::OnWindowClose)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n.unwrap_or(0)))
    ///     .to("final-sessions");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// for ts in [0, 4_000, 8_000] { clicks.pipe_input_at("u".into(), "c".into(), ts).unwrap(); }
    /// let out = driver.output_topic::<String, i64>("final-sessions");
    /// assert!(out.is_empty());
    /// clicks.pipe_input_at("v".into(), "c".into(), 18_001).unwrap(); // 8 s + 10 s passed
    /// assert_eq!(out.read_key_values_to_list().unwrap(), vec![("[u@0/8000]".to_string(), 3)]);
    /// ```
    pub fn emit_strategy(mut self, emit: EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    /// Counts records per session.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::new())
    }

    /// Counts records per session into a store with explicit options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_impl(
            materialized,
            Some(i64::default_serde()),
            "KSTREAM-AGGREGATE-",
            SessionFold {
                init: Some(Arc::new(|| 0)),
                step: Arc::new(|_, _, n| n.unwrap_or(0) + 1),
                merger: Arc::new(|_, a, b| a + b),
            },
        )
    }

    /// Combines the values of each session with `reducer`: a session's first value is kept
    /// as is, and when a record joins sessions their values are combined with `reducer` too
    /// (earlier session first), as Kafka Streams' `SessionWindowedKStream#reduce` does.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SessionWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("pages")
    ///     .group_by_key()
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(Duration::from_secs(10), Duration::from_secs(30)))
    ///     .reduce(|a, b| format!("{a}>{b}"))
    ///     .to_stream()
    ///     .map(|w, path| (w.to_string(), path))
    ///     .to("paths");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let pages = driver.input_topic::<String, String>("pages");
    /// pages.pipe_input_at("u".into(), "/a".into(), 0).unwrap();
    /// pages.pipe_input_at("u".into(), "/c".into(), 20_000).unwrap(); // a second session
    /// pages.pipe_input_at("u".into(), "/b".into(), 10_000).unwrap(); // joins both
    /// let out = driver.output_topic::<String, Option<String>>("paths").read_key_values_to_list().unwrap();
    /// assert_eq!(out.last().unwrap(), &("[u@0/20000]".to_string(), Some("/a>/c>/b".to_string())));
    /// ```
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
        let reducer = Arc::new(reducer);
        let merge = reducer.clone();
        self.aggregate_impl(
            materialized,
            self.grouped.value_serde(),
            "KSTREAM-REDUCE-",
            SessionFold {
                init: None,
                step: Arc::new(move |_, v, agg| match agg {
                    None => v,
                    Some(a) => reducer(a, v),
                }),
                merger: Arc::new(move |_, a, b| merge(a, b)),
            },
        )
    }

    /// Folds each session's values into an aggregate that starts at `initializer()`, with
    /// the aggregate's default serde: `aggregator` adds a record, `merger` combines the
    /// aggregates of two sessions that a record joins.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SessionWindows;
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("spend")
    ///     .group_by_key()
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(10)))
    ///     .aggregate(|| 0i64, |_, v, sum| sum + v, |_, a, b| a + b)
    ///     .to_stream()
    ///     .map(|w, sum| (w.to_string(), sum))
    ///     .to("spend-per-session");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let spend = driver.input_topic::<String, i64>("spend");
    /// spend.pipe_input_at("u".into(), 5, 0).unwrap();
    /// spend.pipe_input_at("u".into(), 7, 4_000).unwrap();
    /// let out = driver.output_topic::<String, Option<i64>>("spend-per-session").read_key_values_to_list().unwrap();
    /// assert_eq!(out.last().unwrap(), &("[u@0/4000]".to_string(), Some(12)));
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde, I, A, M>(
        &self,
        initializer: I,
        aggregator: A,
        merger: M,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    {
        let materialized = Materialized::with_value(VA::default_serde());
        self.aggregate_with(initializer, aggregator, merger, materialized)
    }

    /// [`aggregate`](Self::aggregate) into a store with explicit options.
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
        let initializer = Arc::new(initializer);
        let init = initializer.clone();
        self.aggregate_impl(
            materialized,
            None,
            "KSTREAM-AGGREGATE-",
            SessionFold {
                init: Some(initializer),
                step: Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(|| init()))),
                merger: Arc::new(merger),
            },
        )
    }

    fn aggregate_impl<VA: Data>(
        &self,
        materialized: Materialized<K, VA>,
        default_value_serde: Option<SerdeRef<VA>>,
        prefix: &str,
        fold: SessionFold<K, V, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.builder().clone();
        let carried_key = self.grouped.key_serde();
        let agg = aggregation(&b, &materialized, prefix, carried_key, default_value_serde);
        let (store_name, name, ks, vas) = (agg.store, agg.node, agg.key_serde, agg.value_serde);
        let parent = self.grouped.upstream(&store_name, &ks);
        let windows = self.windows;
        let store = add_session_store(&b, &store_name, &windows, &materialized, &ks, &vas);
        let on_close = self.emit == EmitStrategy::OnWindowClose;
        let node = add_store_node::<K, V, SessHandle<K, VA>, _, _>(
            &b,
            name,
            &[parent],
            &store,
            Some(if on_close {
                flush_quietly::<SessHandle<K, VA>>
            } else {
                flush_and_forward::<SessHandle<K, VA>>
            }),
            move || Timed {
                state: WindowClock::default(),
                process: {
                    let fold = fold.clone();
                    move |clock: &mut WindowClock,
                          store: &SessHandle<K, VA>,
                          r: Record<K, V>,
                          ch: &Children,
                          t: &mut TaskContext|
                          -> Result<()> {
                        let Some(now) = clock.admit(store.is_null_key(&r.key), r.timestamp, t)
                        else {
                            return Ok(());
                        };
                        if on_close {
                            // Before this record is written, as for time windows: it joins
                            // no closed session.
                            emit_closed_sessions(&windows, clock, store, ch, t)?;
                        }
                        aggregate_session(&windows, store, &fold, r, now, t)?;
                        if on_close {
                            store.take_flushed()?;
                            return Ok(());
                        }
                        // Tombstones of the replaced sessions, then the merged one, reach
                        // downstream as they leave the record cache (at once with caching
                        // off).
                        forward_flushed_sessions(store, ch, t)
                    }
                },
                advance: move |clock: &mut WindowClock,
                               store: &SessHandle<K, VA>,
                               ch: &Children,
                               t: &mut TaskContext| {
                    // Stream time moved on without a record (idle advance).
                    clock.observe(t.stream_time);
                    if on_close {
                        emit_closed_sessions(&windows, clock, store, ch, t)?;
                    }
                    Ok(())
                },
            },
        );
        let wks: SerdeRef<Windowed<K>> = Arc::new(crate::window::SessionWindowedSerde::new(ks));
        KTable::new(b.clone(), node, Some(wks), Some(vas), Some(store))
            .closing_after(windows.gap_ms().saturating_add(windows.grace_ms()))
    }
}
