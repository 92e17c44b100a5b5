//! Cogrouped aggregations (Kafka Streams' KIP-150): [`CogroupedKStream`], from
//! [`KGroupedStream::cogroup`], and its windowed forms [`TimeWindowedCogroupedKStream`] and
//! [`SessionWindowedCogroupedKStream`].
//!
//! Several grouped streams with one key type fold into one aggregate per key: each input has
//! its own value type and aggregator, and all of them update the same store — no
//! intermediate table per input. As in Kafka Streams' `CogroupedStreamAggregateBuilder`,
//! each input gets its own aggregation node (after its own repartition topic when its key
//! changed), every one of them connected to that store, and a pass-through merge node
//! (`COGROUPKSTREAM-MERGE-n`, or `<name>-cogroup-merge`) unites their updates into the
//! table. The inputs must be co-partitioned.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use crate::Data;
use crate::error::{Result, TopologyError};
use crate::internals::forward::{dropped_if_null, is_null_value, null_value_dropped};
use crate::internals::node::Children;
use crate::internals::task::TaskContext;
use crate::internals::window_aggregate::{
    SessHandle, SessMerger, SessStep, SessionFold, WinHandle, WinStep, WindowClock, WindowSpec,
    aggregate_session, aggregate_sliding, aggregate_time, forward_flushed_sessions,
    forward_flushed_windows,
};
use crate::record::{Change, Record};
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::ValueAndTimestamp;
use crate::window::{
    SessionWindowedSerde, SessionWindows, SlidingWindows, TimeWindowedSerde, TimeWindows, Windowed,
};

use super::builder::{
    Shared, TsHandle, add_fn_node, add_store_node, add_ts_store, flush_and_forward,
    forward_flushed, require_serde,
};
use super::options::{Materialized, Named};
use super::table_store::{add_session_store, add_window_store};
use super::{KGroupedStream, KTable};

/// The prefix of generated aggregation node names (and, with `STATE-STORE-`, store names).
const AGGREGATE_NAME: &str = "COGROUPKSTREAM-AGGREGATE-";
/// The prefix of generated merge node names.
const MERGE_NAME: &str = "COGROUPKSTREAM-MERGE-";

type Init<VA> = Arc<dyn Fn() -> VA + Send + Sync>;
type Aggregator<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;

/// What the aggregation nodes of one cogroup aggregation compute.
enum Kind<K, VA> {
    /// One aggregate per key, in a timestamped key-value store.
    Table { init: Init<VA> },
    /// One aggregate per key and time or sliding window, in a window store.
    Windows { spec: WindowSpec, init: Init<VA> },
    /// One aggregate per key and session, in a session store.
    Sessions {
        windows: SessionWindows,
        init: Init<VA>,
        merger: SessMerger<K, VA>,
    },
}

/// One input of a cogroup with its value type erased: what the shared wiring needs to know
/// about it, and how it adds its aggregation node.
trait CogroupInput<K, VA> {
    /// The identity of its grouped stream.
    fn id(&self) -> u64;
    /// The key serde its grouping carries, if any.
    fn key_serde(&self) -> Option<SerdeRef<K>>;
    /// The name its repartition topic would get (`<base>-repartition`), if its key changed.
    fn repartition_base(&self, store: &str) -> Option<String>;
    /// The node its aggregation hangs off: the grouped stream, or the source of its
    /// repartition topic (created here).
    fn upstream(&self, store: &str, ks: &SerdeRef<K>) -> usize;
    /// Adds its aggregation node `name` below `parent`, connected to `store`.
    fn add_node(
        &self,
        b: &Shared,
        name: String,
        parent: usize,
        store: &str,
        kind: &Kind<K, VA>,
    ) -> usize;
}

/// An input: a grouped stream and its aggregator.
struct Input<K, V, VA> {
    grouped: KGroupedStream<K, V>,
    id: u64,
    aggregator: Aggregator<K, V, VA>,
}

impl<K: Data, V: Data, VA: Data> CogroupInput<K, VA> for Input<K, V, VA> {
    fn id(&self) -> u64 {
        self.id
    }

    fn key_serde(&self) -> Option<SerdeRef<K>> {
        self.grouped.key_serde()
    }

    fn repartition_base(&self, store: &str) -> Option<String> {
        self.grouped
            .repartition_required()
            .then(|| self.grouped.name().unwrap_or_else(|| store.to_string()))
    }

    fn upstream(&self, store: &str, ks: &SerdeRef<K>) -> usize {
        let ks = self.grouped.key_serde().unwrap_or_else(|| ks.clone());
        self.grouped.upstream(store, &ks)
    }

    fn add_node(
        &self,
        b: &Shared,
        name: String,
        parent: usize,
        store: &str,
        kind: &Kind<K, VA>,
    ) -> usize {
        let aggregator = self.aggregator.clone();
        match kind {
            Kind::Table { init } => {
                let nulls = self.grouped.value_serde();
                add_table_node::<K, V, VA>(b, name, parent, store, init.clone(), nulls, aggregator)
            }
            Kind::Windows { spec, init } => {
                let step = starting_at(init, aggregator);
                let nulls = spec.value_nulls(self.grouped.value_serde());
                add_window_node::<K, V, VA>(b, name, parent, store, *spec, nulls, step)
            }
            Kind::Sessions {
                windows,
                init,
                merger,
            } => add_session_node::<K, V, VA>(
                b,
                name,
                parent,
                store,
                *windows,
                init.clone(),
                starting_at(init, aggregator),
                merger.clone(),
            ),
        }
    }
}

/// `aggregator` as a window step: a new window's aggregate starts at `init()`.
fn starting_at<K: Data, V: Data, VA: Data>(
    init: &Init<VA>,
    aggregator: Aggregator<K, V, VA>,
) -> WinStep<K, V, VA> {
    let init = init.clone();
    Arc::new(move |k, v, agg| aggregator(k, v, agg.unwrap_or_else(|| init())))
}

/// One input's aggregation into the shared key-value store (Kafka's `KStreamAggregate`):
/// the aggregate starts at `init()`, the stored timestamp is the largest of the records
/// that contributed, and updates reach the merge node as they leave the record cache.
/// Records with a null value (by the input's value serde, `nulls`) are dropped and counted,
/// as `KStreamAggregate` does.
fn add_table_node<K: Data, V: Data, VA: Data>(
    b: &Shared,
    name: String,
    parent: usize,
    store: &str,
    init: Init<VA>,
    nulls: Option<SerdeRef<V>>,
    aggregator: Aggregator<K, V, VA>,
) -> usize {
    add_store_node::<K, V, TsHandle<K, VA>, _, _>(
        b,
        name,
        &[parent],
        store,
        Some(flush_and_forward::<TsHandle<K, VA>>),
        move || {
            let (init, aggregator) = (init.clone(), aggregator.clone());
            let nulls = nulls.clone();
            move |store: &TsHandle<K, VA>,
                  r: Record<K, V>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> {
                if dropped_if_null(store.is_null_key(&r.key), t)
                    || null_value_dropped(nulls.as_ref(), &r.value, t)
                {
                    return Ok(());
                }
                let (key, value, rts) = (r.key, r.value, r.timestamp);
                store.update(&key, |old| {
                    let (agg, timestamp) = match old {
                        Some(o) => (o.value, o.timestamp.max(rts)),
                        None => (init(), rts),
                    };
                    let value = aggregator(&key, value, agg);
                    Ok((Some(ValueAndTimestamp { value, timestamp }), ()))
                })?;
                forward_flushed(store, ch, t)
            }
        },
    )
}

/// One input's aggregation into the shared window store (Kafka's `KStreamWindowAggregate`
/// or `KStreamSlidingWindowAggregate`, emitting on every update): records for windows that
/// closed (end + grace at or before the task's stream time) are dropped and counted.
fn add_window_node<K: Data, V: Data, VA: Data>(
    b: &Shared,
    name: String,
    parent: usize,
    store: &str,
    spec: WindowSpec,
    nulls: Option<SerdeRef<V>>,
    step: WinStep<K, V, VA>,
) -> usize {
    add_store_node::<K, V, WinHandle<K, VA>, _, _>(
        b,
        name,
        &[parent],
        store,
        Some(flush_and_forward::<WinHandle<K, VA>>),
        move || {
            let (step, nulls) = (step.clone(), nulls.clone());
            // Each input's node keeps its own observed time, as Kafka's processors do.
            let mut clock = WindowClock::default();
            move |store: &WinHandle<K, VA>,
                  r: Record<K, V>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> {
                let null = store.is_null_key(&r.key) || is_null_value(nulls.as_ref(), &r.value);
                let Some(now) = clock.admit(null, r.timestamp, t) else {
                    return Ok(());
                };
                let close_time = now.saturating_sub(spec.grace_ms());
                match spec {
                    WindowSpec::Time(windows) => {
                        aggregate_time(&windows, store, &step, &r, close_time, t)?;
                    }
                    WindowSpec::Sliding(windows) => {
                        aggregate_sliding(&windows, store, &step, &r, close_time, t)?;
                    }
                }
                forward_flushed_windows(store, ch, t)
            }
        },
    )
}

/// One input's aggregation into the shared session store (Kafka's
/// `KStreamSessionWindowAggregate`): replaced sessions reach the merge node as tombstones,
/// the merged one as an update.
#[allow(clippy::too_many_arguments)]
fn add_session_node<K: Data, V: Data, VA: Data>(
    b: &Shared,
    name: String,
    parent: usize,
    store: &str,
    windows: SessionWindows,
    init: Init<VA>,
    step: SessStep<K, V, VA>,
    merger: SessMerger<K, VA>,
) -> usize {
    add_store_node::<K, V, SessHandle<K, VA>, _, _>(
        b,
        name,
        &[parent],
        store,
        Some(flush_and_forward::<SessHandle<K, VA>>),
        move || {
            let fold = SessionFold {
                init: Some(init.clone()),
                step: step.clone(),
                merger: merger.clone(),
            };
            let mut clock = WindowClock::default();
            move |store: &SessHandle<K, VA>,
                  r: Record<K, V>,
                  ch: &Children,
                  t: &mut TaskContext|
                  -> Result<()> {
                let Some(now) = clock.admit(store.is_null_key(&r.key), r.timestamp, t) else {
                    return Ok(());
                };
                aggregate_session(&windows, store, &fold, r, now, t)?;
                forward_flushed_sessions(store, ch, t)
            }
        },
    )
}

/// Grouped streams cogrouped into one aggregate (Kafka Streams' `CogroupedKStream`), from
/// [`KGroupedStream::cogroup`].
///
/// Each input is a [`KGroupedStream<K, V>`] with its own value type `V` and its own
/// aggregator `Fn(&K, V, VA) -> VA`; all of them fold into one `VA` per key, held in one
/// store. Every record of every input gives one update of its key (coalesced by the record
/// cache when it is on), timestamped with the largest timestamp of the records aggregated
/// so far; records with a null key are dropped and counted in `dropped_records`. An input
/// whose key changed (`select_key`, `group_by`, ...) goes through its own repartition topic,
/// `<grouping name>-repartition` or else `<store name>-repartition`; the topics of all inputs
/// must have the same partition count (the driver and the runtime refuse otherwise with
/// [`TopologyError::NotCopartitioned`]).
///
/// Adding a grouped stream that is already an input replaces its aggregator (Kafka keeps
/// one aggregator per grouped stream too).
pub struct CogroupedKStream<K, VA> {
    b: Shared,
    inputs: Vec<Rc<dyn CogroupInput<K, VA>>>,
    /// The node each input's aggregation hangs off (by grouped-stream id), once made: later
    /// aggregations of this cogroup reuse an input's repartition topic, as Kafka does.
    upstreams: Rc<RefCell<HashMap<u64, usize>>>,
}

impl<K, VA> Clone for CogroupedKStream<K, VA> {
    fn clone(&self) -> Self {
        Self {
            b: self.b.clone(),
            inputs: self.inputs.clone(),
            upstreams: self.upstreams.clone(),
        }
    }
}

debug_fields!(CogroupedKStream<K, VA>, s => { "inputs": s.inputs.len() });

impl<K: Data, VA: Data> CogroupedKStream<K, VA> {
    pub(crate) fn new<V: Data, A>(grouped: &KGroupedStream<K, V>, aggregator: A) -> Self
    where
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        Self {
            b: grouped.builder().clone(),
            inputs: Vec::new(),
            upstreams: Rc::new(RefCell::new(HashMap::new())),
        }
        .cogroup(grouped, aggregator)
    }

    /// Adds `grouped` as another input, folded into the aggregate by `aggregator`. Its key
    /// type is the cogroup's; its value type may be any.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, i64>("a").group_by_key();
    /// let b = builder.stream::<String, String>("b").group_by_key();
    /// let c = builder.stream::<String, f64>("c").group_by_key();
    /// a.cogroup(|_, v: i64, sum: i64| sum + v)
    ///     .cogroup(&b, |_, v: String, sum: i64| sum + v.len() as i64)
    ///     .cogroup(&c, |_, v: f64, sum: i64| sum + v.round() as i64)
    ///     .aggregate(|| 0)
    ///     .to_stream()
    ///     .to("sums");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, i64>("a").pipe_input("k".into(), 5).unwrap();
    /// driver.input_topic::<String, String>("b").pipe_input("k".into(), "abc".into()).unwrap();
    /// driver.input_topic::<String, f64>("c").pipe_input("k".into(), 1.6).unwrap();
    /// let out = driver.output_topic::<String, Option<i64>>("sums");
    /// assert_eq!(out.read_values_to_list().unwrap(), vec![Some(5), Some(8), Some(10)]);
    /// ```
    pub fn cogroup<V: Data, A>(mut self, grouped: &KGroupedStream<K, V>, aggregator: A) -> Self
    where
        A: Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    {
        let input: Rc<dyn CogroupInput<K, VA>> = Rc::new(Input {
            grouped: grouped.copy(),
            id: grouped.id(),
            aggregator: Arc::new(aggregator),
        });
        match self.inputs.iter().position(|i| i.id() == grouped.id()) {
            Some(at) => self.inputs[at] = input,
            None => self.inputs.push(input),
        }
        self
    }

    /// Aggregates the inputs into a table: the aggregate of a key starts at `initializer()`
    /// and each record folds into it with its input's aggregator. The store has a generated
    /// name, the aggregate's default serde and the key serde of the inputs' grouping.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let logins = builder.stream::<String, String>("logins").group_by_key();
    /// let errors = builder.stream::<String, i64>("errors").group_by_key();
    /// logins
    ///     .cogroup(|_, _device: String, score: i64| score + 1)
    ///     .cogroup(&errors, |_, code: i64, score: i64| score - code)
    ///     .aggregate(|| 100)
    ///     .to_stream()
    ///     .to("scores");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("logins").pipe_input_at("u".into(), "phone".into(), 10).unwrap();
    /// driver.input_topic::<String, i64>("errors").pipe_input_at("u".into(), 5, 7).unwrap();
    /// let out = driver.output_topic::<String, Option<i64>>("scores");
    /// let got: Vec<_> = out.read_records_to_list().unwrap().into_iter()
    ///     .map(|r| (r.value, r.timestamp)).collect();
    /// // The result keeps the largest timestamp of the records aggregated so far.
    /// assert_eq!(got, vec![(Some(101), 10), (Some(96), 10)]);
    /// ```
    pub fn aggregate<I>(&self, initializer: I) -> KTable<K, VA>
    where
        VA: DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
    {
        self.aggregate_with(
            initializer,
            Named::none(),
            Materialized::with_value(VA::default_serde()),
        )
    }

    /// [`aggregate`](Self::aggregate) with a name for its processors
    /// (`<name>-cogroup-agg-<i>` per input, `<name>-cogroup-merge`) and store options.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, String>("a").group_by_key();
    /// let b = builder.stream::<String, String>("b").group_by_key();
    /// a.cogroup(|_, v: String, agg: String| agg + &v)
    ///     .cogroup(&b, |_, v: String, agg: String| agg + &v.to_uppercase())
    ///     .aggregate_with(String::new, Named::as_("letters"),
    ///         Materialized::as_("letters-store").with_value_serde(default_serde()))
    ///     .to_stream()
    ///     .to("out");
    /// let topology = builder.build().unwrap();
    /// let names: Vec<String> = topology.describe().subtopologies[0].nodes.iter()
    ///     .map(|n| n.name.clone()).collect();
    /// assert!(names.contains(&"letters-cogroup-agg-1".to_string()));
    /// assert!(names.contains(&"letters-cogroup-merge".to_string()));
    /// let driver = TopologyTestDriver::new(topology, StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("a").pipe_input("k".into(), "x".into()).unwrap();
    /// driver.input_topic::<String, String>("b").pipe_input("k".into(), "y".into()).unwrap();
    /// let store = driver.key_value_store::<String, String>("letters-store").unwrap();
    /// assert_eq!(store.get(&"k".into()).unwrap(), Some("xY".to_string()));
    /// ```
    pub fn aggregate_with<I>(
        &self,
        initializer: I,
        named: Named,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let b = self.b.clone();
        let store_name = self.store_name(&materialized);
        let (ks, vas) = self.serdes(&store_name, &materialized);
        let store = add_ts_store(&b, store_name, &materialized, ks.clone(), vas.clone());
        let kind = Kind::Table {
            init: Arc::new(initializer),
        };
        let merge = self.wire::<K>(&store, &ks, &kind, &named);
        KTable::new(b, merge, Some(ks), Some(vas), Some(store))
    }

    /// Cuts the cogrouped inputs into time windows (tumbling or hopping), as
    /// [`KGroupedStream::windowed_by`] does for one input.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::TimeWindows;
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views").group_by_key();
    /// let buys = builder.stream::<String, i64>("buys").group_by_key();
    /// views
    ///     .cogroup(|_, _page: String, n: i64| n + 1)
    ///     .cogroup(&buys, |_, _amount: i64, n: i64| n + 10)
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
    ///     .aggregate(|| 0)
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n.unwrap_or(0)))
    ///     .to("points-per-minute");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("views").pipe_input_at("u".into(), "/a".into(), 1_000).unwrap();
    /// driver.input_topic::<String, i64>("buys").pipe_input_at("u".into(), 20, 2_000).unwrap();
    /// driver.input_topic::<String, String>("views").pipe_input_at("u".into(), "/b".into(), 61_000).unwrap();
    /// let out = driver.output_topic::<String, i64>("points-per-minute").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![
    ///     ("[u@0/60000]".to_string(), 1),
    ///     ("[u@0/60000]".to_string(), 11),
    ///     ("[u@60000/120000]".to_string(), 1),
    /// ]);
    /// ```
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedCogroupedKStream<K, VA> {
        if let Some(problem) = windows.problem() {
            self.b.borrow_mut().error(TopologyError::InvalidOption {
                operator: "windowed_by".into(),
                detail: problem,
            });
        }
        TimeWindowedCogroupedKStream {
            cogrouped: self.clone(),
            spec: WindowSpec::Time(windows),
        }
    }

    /// Aggregates the cogrouped inputs over sliding windows, as
    /// [`KGroupedStream::windowed_by_sliding`] does for one input (Kafka Streams'
    /// `windowedBy(SlidingWindows)`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SlidingWindows;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, String>("a").group_by_key();
    /// let b = builder.stream::<String, i64>("b").group_by_key();
    /// a.cogroup(|_, _: String, n: i64| n + 1)
    ///     .cogroup(&b, |_, v: i64, n: i64| n + v)
    ///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_secs(5)))
    ///     .aggregate(|| 0)
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n.unwrap_or(0)))
    ///     .to("out");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("a").pipe_input_at("k".into(), "x".into(), 8_000).unwrap();
    /// driver.input_topic::<String, i64>("b").pipe_input_at("k".into(), 10, 12_000).unwrap();
    /// let out = driver.output_topic::<String, i64>("out").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![
    ///     ("[k@3000/8000]".to_string(), 1),
    ///     ("[k@8001/13001]".to_string(), 10),
    ///     ("[k@7000/12000]".to_string(), 11),
    /// ]);
    /// ```
    pub fn windowed_by_sliding(
        &self,
        windows: SlidingWindows,
    ) -> TimeWindowedCogroupedKStream<K, VA> {
        TimeWindowedCogroupedKStream {
            cogrouped: self.clone(),
            spec: WindowSpec::Sliding(windows),
        }
    }

    /// Cuts the cogrouped inputs into sessions of activity, as
    /// [`KGroupedStream::windowed_by_session`] does for one input: a record of any input
    /// extends or merges the sessions of its key.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SessionWindows;
    /// let builder = StreamsBuilder::new();
    /// let clicks = builder.stream::<String, String>("clicks").group_by_key();
    /// let scrolls = builder.stream::<String, i64>("scrolls").group_by_key();
    /// clicks
    ///     .cogroup(|_, _: String, n: i64| n + 1)
    ///     .cogroup(&scrolls, |_, _: i64, n: i64| n + 1)
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(30)))
    ///     .aggregate(|| 0, |_, a, b| a + b)
    ///     .to_stream()
    ///     .map(|w, n| (w.to_string(), n))
    ///     .to("sessions");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("clicks").pipe_input_at("u".into(), "a".into(), 0).unwrap();
    /// driver.input_topic::<String, i64>("scrolls").pipe_input_at("u".into(), 3, 20_000).unwrap();
    /// let out = driver.output_topic::<String, Option<i64>>("sessions").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![
    ///     ("[u@0/0]".to_string(), Some(1)),
    ///     ("[u@0/0]".to_string(), None),          // merged into the next session
    ///     ("[u@0/20000]".to_string(), Some(2)),
    /// ]);
    /// ```
    pub fn windowed_by_session(
        &self,
        windows: SessionWindows,
    ) -> SessionWindowedCogroupedKStream<K, VA> {
        if let Some(problem) = windows.problem() {
            self.b.borrow_mut().error(TopologyError::InvalidOption {
                operator: "windowed_by_session".into(),
                detail: problem,
            });
        }
        SessionWindowedCogroupedKStream {
            cogrouped: self.clone(),
            windows,
        }
    }

    /// The store's name: given, or generated (`COGROUPKSTREAM-AGGREGATE-STATE-STORE-n`).
    fn store_name(&self, materialized: &Materialized<K, VA>) -> String {
        self.b.borrow_mut().name_or(
            materialized.name.as_deref(),
            &format!("{AGGREGATE_NAME}STATE-STORE-"),
        )
    }

    /// The store's serdes: from `materialized`, else the key serde the inputs' groupings
    /// carry (the first input that has one); a missing one is a build error.
    fn serdes(
        &self,
        store: &str,
        materialized: &Materialized<K, VA>,
    ) -> (SerdeRef<K>, SerdeRef<VA>) {
        let carried = self.inputs.iter().find_map(|i| i.key_serde());
        let ks = require_serde(
            &self.b,
            store,
            "key",
            materialized.key_serde.clone(),
            carried,
        );
        let vas = require_serde(
            &self.b,
            store,
            "value",
            materialized.value_serde.clone(),
            None,
        );
        (ks, vas)
    }

    /// Wires an aggregation into `store`: each input's upstream (repartitioned if its key
    /// changed), one aggregation node per input, all connected to the store, and the merge
    /// node below them, whose index is returned. `KO` is the table's key type.
    fn wire<KO: Data>(
        &self,
        store: &str,
        ks: &SerdeRef<K>,
        kind: &Kind<K, VA>,
        named: &Named,
    ) -> usize {
        let b = &self.b;
        // Two inputs repartitioned through one topic would collide; Kafka fails too.
        let mut bases = HashSet::new();
        for input in &self.inputs {
            if self.upstreams.borrow().contains_key(&input.id()) {
                continue;
            }
            if let Some(base) = input.repartition_base(store)
                && !bases.insert(base.clone())
            {
                b.borrow_mut().error(TopologyError::InvalidOption {
                    operator: "cogroup".into(),
                    detail: format!(
                        "two inputs would be repartitioned through `{base}-repartition`; \
                         give the groupings of re-keyed inputs distinct names \
                         (group_by_key_with(Grouped::as_(..)))"
                    ),
                });
            }
        }
        let parents: Vec<usize> = self
            .inputs
            .iter()
            .map(|input| {
                let cached = self.upstreams.borrow().get(&input.id()).copied();
                cached.unwrap_or_else(|| {
                    let node = input.upstream(store, ks);
                    self.upstreams.borrow_mut().insert(input.id(), node);
                    node
                })
            })
            .collect();
        let aggregators: Vec<usize> = self
            .inputs
            .iter()
            .zip(&parents)
            .enumerate()
            .map(|(i, (input, &parent))| {
                let name = match &named.name {
                    Some(n) => format!("{n}-cogroup-agg-{i}"),
                    None => b.borrow_mut().generate(AGGREGATE_NAME),
                };
                input.add_node(b, name, parent, store, kind)
            })
            .collect();
        let merge_name = match &named.name {
            Some(n) => format!("{n}-cogroup-merge"),
            None => b.borrow_mut().generate(MERGE_NAME),
        };
        let merge =
            add_fn_node::<KO, Change<VA>, _, _>(b, merge_name.clone(), &aggregators, || {
                |r: Record<KO, Change<VA>>, ch: &Children, t: &mut TaskContext| ch.forward(t, r)
            });
        if parents.len() > 1 {
            b.borrow_mut().copartition(&merge_name, &parents);
        }
        merge
    }
}

/// Cogrouped streams cut into time windows (tumbling, hopping) or sliding windows (Kafka
/// Streams' `TimeWindowedCogroupedKStream`), from [`CogroupedKStream::windowed_by`] or
/// [`CogroupedKStream::windowed_by_sliding`]; the aggregation gives a table keyed by
/// [`Windowed<K>`].
///
/// Each record of each input updates every window that contains it and is still open; a
/// record for a window whose end plus grace is at or before the task's stream time is
/// dropped for that window and counted in `dropped_records`, as in the single-input
/// [`TimeWindowedKStream`](crate::dsl::TimeWindowedKStream). Results are emitted on every
/// update (through the record cache when it is on), as Kafka's cogroup does.
pub struct TimeWindowedCogroupedKStream<K, VA> {
    cogrouped: CogroupedKStream<K, VA>,
    spec: WindowSpec,
}

debug_fields!(TimeWindowedCogroupedKStream<K, VA>, s => { "inputs": s.cogrouped.inputs.len(), "windows": s.spec });

impl<K: Data, VA: Data> TimeWindowedCogroupedKStream<K, VA> {
    /// Aggregates each key and window of the inputs, starting at `initializer()`, into a
    /// window store with a generated name and the aggregate's default serde.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::TimeWindows;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, i64>("a").group_by_key();
    /// let b = builder.stream::<String, i64>("b").group_by_key();
    /// a.cogroup(|_, v: i64, sum: i64| sum + v)
    ///     .cogroup(&b, |_, v: i64, sum: i64| sum - v)
    ///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(10), Duration::from_secs(5)))
    ///     .aggregate(|| 0)
    ///     .to_stream()
    ///     .map(|w, v| (w.to_string(), v.unwrap_or(0)))
    ///     .to("out");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, i64>("a").pipe_input_at("k".into(), 7, 1_000).unwrap();
    /// driver.input_topic::<String, i64>("b").pipe_input_at("k".into(), 2, 16_000).unwrap();
    /// // Window [0, 10000) closed at 15000 (end + grace) for input b, which saw 16000: this
    /// // record is dropped (each input's aggregation keeps its own stream time, as in Kafka).
    /// driver.input_topic::<String, i64>("b").pipe_input_at("k".into(), 1, 9_000).unwrap();
    /// let out = driver.output_topic::<String, i64>("out").read_key_values_to_list().unwrap();
    /// assert_eq!(out, vec![("[k@0/10000]".to_string(), 7), ("[k@10000/20000]".to_string(), -2)]);
    /// assert_eq!(driver.metrics().dropped_records, 1);
    /// ```
    pub fn aggregate<I>(&self, initializer: I) -> KTable<Windowed<K>, VA>
    where
        VA: DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
    {
        self.aggregate_with(
            initializer,
            Named::none(),
            Materialized::with_value(VA::default_serde()),
        )
    }

    /// [`aggregate`](Self::aggregate) with a name for its processors and store options
    /// (name, serdes, caching, logging, retention: by default the window size plus grace,
    /// for sliding windows twice the time difference plus grace, and never less, as in
    /// Kafka Streams).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::TimeWindows;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, String>("a").group_by_key();
    /// a.cogroup(|_, v: String, agg: String| agg + &v)
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(500)))
    ///     .aggregate_with(String::new, Named::as_("w"),
    ///         Materialized::as_("w-store").with_value_serde(default_serde()));
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("a").pipe_input_at("k".into(), "x".into(), 100).unwrap();
    /// driver.input_topic::<String, String>("a").pipe_input_at("k".into(), "y".into(), 200).unwrap();
    /// let store = driver.window_store::<String, String>("w-store").unwrap();
    /// assert_eq!(store.fetch(&"k".into(), 0).unwrap(), Some("xy".to_string()));
    /// ```
    pub fn aggregate_with<I>(
        &self,
        initializer: I,
        named: Named,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
    {
        let c = &self.cogrouped;
        let b = c.b.clone();
        let store_name = c.store_name(&materialized);
        let (ks, vas) = c.serdes(&store_name, &materialized);
        let spec = self.spec;
        let store = add_window_store(&b, &store_name, spec, &materialized, &ks, &vas);
        let kind = Kind::Windows {
            spec,
            init: Arc::new(initializer),
        };
        let merge = c.wire::<Windowed<K>>(&store, &ks, &kind, &named);
        let wks: SerdeRef<Windowed<K>> = Arc::new(TimeWindowedSerde::new(ks, Some(spec.size_ms())));
        KTable::new(b, merge, Some(wks), Some(vas), Some(store)).closing_after(spec.grace_ms())
    }
}

/// Cogrouped streams cut into sessions (Kafka Streams' `SessionWindowedCogroupedKStream`),
/// from [`CogroupedKStream::windowed_by_session`]; the aggregation gives a table keyed by
/// [`Windowed<K>`] whose window is the session `[first record, last record]`.
///
/// A record of any input merges every session of its key that ends at most `gap` before it
/// or starts at most `gap` after it, as in the single-input
/// [`SessionWindowedKStream`](crate::dsl::SessionWindowedKStream): the merged sessions are
/// forwarded as tombstones and the merged result as an update, timestamped with the session
/// end. A record whose merged session ended more than `gap + grace` before stream time is
/// dropped and counted.
pub struct SessionWindowedCogroupedKStream<K, VA> {
    cogrouped: CogroupedKStream<K, VA>,
    windows: SessionWindows,
}

debug_fields!(SessionWindowedCogroupedKStream<K, VA>, s => { "inputs": s.cogrouped.inputs.len(), "windows": s.windows });

impl<K: Data, VA: Data> SessionWindowedCogroupedKStream<K, VA> {
    /// Aggregates each session of the inputs: a new session starts at `initializer()`,
    /// records fold in with their input's aggregator, and `merger` combines the aggregates
    /// of sessions that a record joins. The session store has a generated name and the
    /// aggregate's default serde.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SessionWindows;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, String>("a").group_by_key();
    /// let b = builder.stream::<String, String>("b").group_by_key();
    /// a.cogroup(|_, v: String, agg: String| agg + &v)
    ///     .cogroup(&b, |_, v: String, agg: String| agg + &v.to_uppercase())
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(100)))
    ///     .aggregate(String::new, |_, left, right| left + &right)
    ///     .to_stream()
    ///     .map(|w, v| (w.to_string(), v))
    ///     .to("out");
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, String>("a").pipe_input_at("k".into(), "x".into(), 0).unwrap();
    /// driver.input_topic::<String, String>("b").pipe_input_at("k".into(), "y".into(), 500).unwrap();
    /// let out = driver.output_topic::<String, Option<String>>("out").read_key_values_to_list().unwrap();
    /// // 500 ms apart, more than the gap: two sessions.
    /// assert_eq!(out, vec![
    ///     ("[k@0/0]".to_string(), Some("x".to_string())),
    ///     ("[k@500/500]".to_string(), Some("Y".to_string())),
    /// ]);
    /// ```
    pub fn aggregate<I, M>(&self, initializer: I, merger: M) -> KTable<Windowed<K>, VA>
    where
        VA: DefaultSerde,
        I: Fn() -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    {
        self.aggregate_with(
            initializer,
            merger,
            Named::none(),
            Materialized::with_value(VA::default_serde()),
        )
    }

    /// [`aggregate`](Self::aggregate) with a name for its processors and store options
    /// (retention: by default gap plus grace, and never less).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::window::SessionWindows;
    /// let builder = StreamsBuilder::new();
    /// let a = builder.stream::<String, i64>("a").group_by_key();
    /// a.cogroup(|_, v: i64, sum: i64| sum + v)
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(100)))
    ///     .aggregate_with(|| 0, |_, x, y| x + y, Named::as_("s"),
    ///         Materialized::as_("s-store").with_value_serde(default_serde()));
    /// let driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// driver.input_topic::<String, i64>("a").pipe_input_at("k".into(), 2, 0).unwrap();
    /// driver.input_topic::<String, i64>("a").pipe_input_at("k".into(), 3, 50).unwrap();
    /// let sessions = driver.session_store::<String, i64>("s-store").unwrap().fetch(&"k".into()).unwrap();
    /// assert_eq!(sessions.into_iter().map(|(w, v)| (w.window.start, w.window.end, v)).collect::<Vec<_>>(),
    ///            vec![(0, 50, 5)]);
    /// ```
    pub fn aggregate_with<I, M>(
        &self,
        initializer: I,
        merger: M,
        named: Named,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        I: Fn() -> VA + Send + Sync + 'static,
        M: Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    {
        let c = &self.cogrouped;
        let b = c.b.clone();
        let store_name = c.store_name(&materialized);
        let (ks, vas) = c.serdes(&store_name, &materialized);
        let windows = self.windows;
        let close_after = windows.gap_ms().saturating_add(windows.grace_ms());
        let store = add_session_store(&b, &store_name, &windows, &materialized, &ks, &vas);
        let kind = Kind::Sessions {
            windows,
            init: Arc::new(initializer),
            merger: Arc::new(merger),
        };
        let merge = c.wire::<Windowed<K>>(&store, &ks, &kind, &named);
        let wks: SerdeRef<Windowed<K>> = Arc::new(SessionWindowedSerde::new(ks));
        KTable::new(b, merge, Some(wks), Some(vas), Some(store)).closing_after(close_after)
    }
}
