//! The per-record machinery of windowed aggregations (time, sliding and session windows):
//! adding a record to its windows, dropping and side-writing late records, emitting closed
//! windows, and forwarding what leaves a window store's cache. The DSL
//! ([`crate::dsl::TimeWindowedKStream`] and its siblings) wires these into nodes.

use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::context::{ProducedRecord, TaskContext};
use crate::internals::node::Children;
use crate::record::{Change, Record};
use crate::serde::SerdeRef;
use crate::state::{ValueAndTimestamp, WindowStoreHandle};
use crate::window::{SlidingWindows, TimeWindows, Window, Windowed};

pub(crate) type WinHandle<K, VA> = WindowStoreHandle<K, ValueAndTimestamp<VA>>;

pub(crate) type WinStep<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// Where records too late for every window they belong to are written instead of being
/// lost: a topic, with the serdes to write it.
pub(crate) struct LateOutput<K, V> {
    pub(crate) topic: Arc<str>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
}

impl<K: Data, V: Data> LateOutput<K, V> {
    /// Writes the late record `r` to the side topic with its original timestamp and headers.
    pub(crate) fn write(&self, r: &Record<K, V>, t: &mut TaskContext) -> Result<()> {
        let ser = |which, e| StreamsError::Serialization {
            which,
            target: self.topic.to_string(),
            source: e,
        };
        t.output.push(ProducedRecord {
            topic: self.topic.clone(),
            partition: None,
            key: self
                .key_serde
                .serialize_nullable(&r.key)
                .map_err(|e| ser("key", e))?,
            value: self
                .value_serde
                .serialize_nullable(&r.value)
                .map_err(|e| ser("value", e))?,
            timestamp: r.timestamp,
            headers: r.headers.clone(),
        });
        Ok(())
    }
}

/// The windows of a [`TimeWindowedKStream`]: time (tumbling, hopping) or sliding.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WindowSpec {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

impl WindowSpec {
    /// The serde by which these windows' aggregation drops records with a null value:
    /// Kafka's `KStreamSlidingWindowAggregate` drops them (and counts them), its
    /// `KStreamWindowAggregate` hands them to the aggregator.
    pub(crate) fn value_nulls<V>(&self, serde: Option<SerdeRef<V>>) -> Option<SerdeRef<V>> {
        match self {
            Self::Time(_) => None,
            Self::Sliding(_) => serde,
        }
    }

    /// The distance from a window's start to its end in the store and in windowed keys.
    pub(crate) fn size_ms(&self) -> i64 {
        match self {
            Self::Time(w) => w.size_ms(),
            Self::Sliding(w) => w.time_difference_ms(),
        }
    }

    pub(crate) fn grace_ms(&self) -> i64 {
        match self {
            Self::Time(w) => w.grace_ms(),
            Self::Sliding(w) => w.grace_ms(),
        }
    }

    /// The least retention that keeps every window the aggregation still needs: size plus
    /// grace, and for sliding windows twice the difference plus grace (a record's right
    /// window is built from windows up to `2 * difference` before it), as in Kafka Streams.
    pub(crate) fn minimum_retention(&self) -> i64 {
        match self {
            Self::Time(w) => w.size_ms().saturating_add(w.grace_ms()),
            Self::Sliding(w) => w
                .time_difference_ms()
                .saturating_mul(2)
                .saturating_add(w.grace_ms()),
        }
    }

    /// The store retention for a requested one: by default the minimum, and asking for
    /// less is an error (Kafka Streams 3.x's `WindowStoreMaterializer` rules).
    pub(crate) fn retention(&self, requested: Option<i64>) -> std::result::Result<i64, String> {
        let what = match self {
            Self::Time(_) => "the window size plus the grace period",
            Self::Sliding(_) => "twice the time difference plus the grace period",
        };
        at_least(self.minimum_retention(), requested, what)
    }
}

/// A store's retention: `requested`, which must be at least `min` (`what` says what that
/// is), or `min` by default.
fn at_least(min: i64, requested: Option<i64>, what: &str) -> std::result::Result<i64, String> {
    match requested {
        None => Ok(min),
        Some(r) if r >= min => Ok(r),
        Some(r) => Err(format!(
            "the retention ({r} ms) must be at least {what} ({min} ms)"
        )),
    }
}

/// The retention of a session store: by default the inactivity gap plus grace, and asking
/// for less is an error (Kafka Streams 3.x's `SessionStoreMaterializer` rules).
pub(crate) fn session_retention(
    windows: &crate::window::SessionWindows,
    requested: Option<i64>,
) -> std::result::Result<i64, String> {
    let min = windows.gap_ms().saturating_add(windows.grace_ms());
    at_least(min, requested, "the inactivity gap plus the grace period")
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

/// The time a windowed aggregation node goes by: the largest timestamp of the records
/// that reached it (Kafka's per-processor `observedStreamTime`: a record dropped upstream,
/// or one of another branch of the task, closes no window here), and for emit-on-close
/// the end up to which final results were emitted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowClock {
    observed: i64,
    emitted_until: i64,
}

impl Default for WindowClock {
    fn default() -> Self {
        Self {
            observed: i64::MIN,
            emitted_until: i64::MIN,
        }
    }
}

impl WindowClock {
    /// Takes `ts` into the observed time; returns the observed time.
    pub(crate) fn observe(&mut self, ts: i64) -> i64 {
        self.observed = self.observed.max(ts);
        self.observed
    }

    /// A record reaching the aggregation: one that is `null` (a null key, or a null value
    /// where the windows drop those) is dropped and counted (it moves no time on, as in
    /// Kafka); otherwise its timestamp is observed and the observed time returned.
    pub(crate) fn admit(&mut self, null: bool, ts: i64, t: &mut TaskContext) -> Option<i64> {
        if crate::internals::forward::dropped_if_null(null, t) {
            return None;
        }
        Some(self.observe(ts))
    }
}

/// Emit-on-close: forwards, from the store, every window that closed by the observed time
/// since the last call (its end in `(emitted_until, closed_until]`), and moves
/// `emitted_until` on.
pub(crate) fn emit_closed<K: Data, VA: Data>(
    spec: &WindowSpec,
    clock: &mut WindowClock,
    store: &WinHandle<K, VA>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    let emitted_until = &mut clock.emitted_until;
    let close_time = clock.observed.saturating_sub(spec.grace_ms());
    // The latest end of a closed window: time windows' ends are exclusive, sliding
    // windows' inclusive (one ending at the close time is still open).
    let closed_until = match spec {
        WindowSpec::Time(_) => close_time,
        WindowSpec::Sliding(_) => close_time.saturating_sub(1),
    };
    if closed_until <= *emitted_until {
        return Ok(());
    }
    let size = spec.size_ms();
    let to = closed_until.saturating_sub(size);
    let from = emitted_until.saturating_sub(size).saturating_add(1).max(0);
    if to >= from {
        // In window-start order, then by key bytes within a start, as Kafka's time-ordered
        // store of emit-on-close aggregations gives them (the store's own order is by key,
        // then start: the stable sort keeps the key order of each start).
        let mut closed = store.fetch_all(from, to)?;
        closed.sort_by_key(|(key, _)| key.window.start);
        for (key, v) in closed {
            ch.forward(
                t,
                Record::new(key, Change::new(Some(v.value), None), v.timestamp),
            )?;
        }
    }
    *emitted_until = closed_until;
    Ok(())
}

/// Adds `r` to every time window that contains it and is still open; whether any was.
pub(crate) fn aggregate_time<K: Data, V: Data, VA: Data>(
    windows: &TimeWindows,
    store: &WinHandle<K, VA>,
    step: &WinStep<K, V, VA>,
    r: &Record<K, V>,
    close_time: i64,
    t: &mut TaskContext,
) -> Result<bool> {
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
        put_aggregated(store, step, r, start, old)?;
    }
    Ok(on_time)
}

/// Stores `step(old, r)` in the window at `start`, timestamped with the latest record
/// timestamp of the window.
pub(crate) fn put_aggregated<K: Data, V: Data, VA: Data>(
    store: &WinHandle<K, VA>,
    step: &WinStep<K, V, VA>,
    r: &Record<K, V>,
    start: i64,
    old: Option<ValueAndTimestamp<VA>>,
) -> Result<()> {
    let (old_value, timestamp) = match old {
        Some(o) => (Some(o.value), o.timestamp.max(r.timestamp)),
        None => (None, r.timestamp),
    };
    let value = step(&r.key, r.value.clone(), old_value);
    store.put(&r.key, Some(&ValueAndTimestamp { value, timestamp }), start)
}

/// Sliding-window aggregation of one record, as Kafka Streams'
/// `KStreamSlidingWindowAggregate` does it (in-order variant): the record is added to every
/// existing window that contains it, its left window `[t - d, t]` is created from the
/// aggregate of the windows before it, the previous record's right window is created when
/// this record falls into it, and this record's right window `[t + 1, t + 1 + d]` is created
/// when later records (out of order) already exist. The store's timestamps are each window's
/// latest record time, which is what tells the windows apart. Returns whether the record
/// counted in any window.
pub(crate) fn aggregate_sliding<K: Data, V: Data, VA: Data>(
    windows: &SlidingWindows,
    store: &WinHandle<K, VA>,
    step: &WinStep<K, V, VA>,
    r: &Record<K, V>,
    close_time: i64,
    t: &mut TaskContext,
) -> Result<bool> {
    let d = windows.time_difference_ms();
    let ts = r.timestamp;
    if ts.saturating_add(1).saturating_add(d) <= close_time {
        // Every window the record could belong to has closed.
        t.metrics.dropped_records += 1;
        return Ok(false);
    }
    let mut accepted = false;
    // Adds the record to the window at `start` unless that window closed. A sliding
    // window's end is inclusive, so one ending exactly at the close time is still open.
    let mut update = |start: i64, old: Option<ValueAndTimestamp<VA>>, t: &mut TaskContext| {
        if start.saturating_add(d) >= close_time {
            accepted = true;
            put_aggregated(store, step, r, start, old)
        } else {
            t.metrics.dropped_records += 1;
            Ok(())
        }
    };
    let mut starts = std::collections::HashSet::new();
    let mut right_agg: Option<ValueAndTimestamp<VA>> = None;
    let mut right_created = false;
    let mut previous: Option<i64> = None;
    if ts < d {
        // Early records (the left window would start before 0) share the window [0, d].
        let mut combined: Option<ValueAndTimestamp<VA>> = None;
        for (start, agg) in store.fetch_range(&r.key, 0, ts.saturating_add(1))? {
            starts.insert(start);
            if start == 0 {
                if agg.timestamp < ts {
                    previous = Some(agg.timestamp);
                }
                combined = Some(agg);
            } else if start <= ts {
                right_agg = Some(agg.clone());
                update(start, Some(agg), t)?;
            } else if start == ts + 1 {
                right_created = true;
            }
        }
        // Without a right window found, the combined window holds only records after this
        // one when its latest record is later: it is then this record's right window.
        if right_agg.is_none()
            && let Some(c) = &combined
            && c.timestamp > ts
        {
            right_agg = Some(c.clone());
        }
        if !right_created && let Some(agg) = right_agg.filter(|a| a.timestamp > ts) {
            store.put(&r.key, Some(&agg), ts + 1)?;
        }
        if let Some(p) = previous
            && !starts.contains(&(p + 1))
        {
            update(p + 1, None, t)?;
        }
        update(0, combined, t)?;
        return Ok(accepted);
    }
    let mut left_agg: Option<ValueAndTimestamp<VA>> = None;
    let mut left_created = false;
    let from = ts.saturating_sub(d.saturating_mul(2)).max(0);
    for (start, agg) in store.fetch_range(&r.key, from, ts.saturating_add(1))? {
        starts.insert(start);
        let end = start.saturating_add(d);
        if end < ts {
            previous = Some(agg.timestamp);
            left_agg = Some(agg);
        } else if end == ts {
            left_created = true;
            if agg.timestamp < ts {
                previous = Some(agg.timestamp);
            }
            update(start, Some(agg), t)?;
        } else if start <= ts {
            right_agg = Some(agg.clone());
            update(start, Some(agg), t)?;
        } else if start == ts + 1 {
            right_created = true;
        }
    }
    // The previous record's right window, when this record falls into it.
    if let Some(p) = previous
        && !starts.contains(&(p + 1))
        && p + 1 + d >= ts
    {
        update(p + 1, None, t)?;
    }
    if !left_created {
        // The left window holds the previous record's aggregate when that record is
        // within `d` of this one.
        let base = match previous {
            Some(p) if ts - d <= p => left_agg.map(|a| a.value),
            _ => None,
        };
        let base = base.map(|value| ValueAndTimestamp {
            value,
            timestamp: ts,
        });
        update(ts - d, base, t)?;
    }
    if !right_created && let Some(agg) = right_agg.filter(|a| a.timestamp > ts) {
        store.put(&r.key, Some(&agg), ts + 1)?;
    }
    Ok(accepted)
}

/// Forwards the window updates that left `store`'s cache as table changes.
pub(crate) fn forward_flushed_windows<K: Data, VA: Data>(
    store: &WinHandle<K, VA>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    for (key, new, old) in store.take_flushed()? {
        let now = t.current_timestamp;
        if let Some(change) = crate::internals::forward::flushed_change(key, new, old, now) {
            ch.forward(t, change)?;
        }
    }
    Ok(())
}

/// Forwards the session updates that left `store`'s cache, timestamped with the session
/// end; an entry that never reached the store and is gone again is not forwarded.
pub(crate) fn forward_flushed_sessions<K: Data, VA: Data>(
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

crate::internals::forward::forwards_flushed!(WinHandle, forward_flushed_windows);
crate::internals::forward::forwards_flushed!(SessHandle, forward_flushed_sessions);

pub(crate) type SessHandle<K, VA> = crate::state::SessionStoreHandle<K, VA>;

/// Emit-on-close for sessions (Kafka's `KStreamSessionWindowAggregate` with
/// `EmitStrategy.onWindowClose()`): forwards, from the store, every session that closed since
/// the last call — its end before `observed - gap - grace`, when a record joining it would be
/// dropped — as a final result timestamped with its end, ascending by end, and moves
/// `emitted_until` on.
pub(crate) fn emit_closed_sessions<K: Data, VA: Data>(
    windows: &crate::window::SessionWindows,
    clock: &mut WindowClock,
    store: &SessHandle<K, VA>,
    ch: &Children,
    t: &mut TaskContext,
) -> Result<()> {
    let close = clock
        .observed
        .saturating_sub(windows.gap_ms())
        .saturating_sub(windows.grace_ms());
    if close <= clock.emitted_until {
        return Ok(());
    }
    for (key, v) in store.sessions_ending_in(clock.emitted_until, close)? {
        let end = key.window.end;
        ch.forward(t, Record::new(key, Change::new(Some(v), None), end))?;
    }
    clock.emitted_until = close;
    Ok(())
}
/// A record added to its session's aggregate (`None`: a reduction's first value).
pub(crate) type SessStep<K, V, VA> = WinStep<K, V, VA>;
pub(crate) type SessMerger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

/// How a session aggregation folds records: `init` starts a session's aggregate (`None`:
/// a reduction, which starts from the first value), `step` adds a record, `merger`
/// combines the aggregates of two sessions.
pub(crate) struct SessionFold<K, V, VA> {
    pub(crate) init: Option<Arc<dyn Fn() -> VA + Send + Sync>>,
    pub(crate) step: SessStep<K, V, VA>,
    pub(crate) merger: SessMerger<K, VA>,
}

impl<K, V, VA> Clone for SessionFold<K, V, VA> {
    fn clone(&self) -> Self {
        Self {
            init: self.init.clone(),
            step: self.step.clone(),
            merger: self.merger.clone(),
        }
    }
}

/// Adds `r` to its session, as Kafka Streams' `KStreamSessionWindowAggregate` does: the
/// sessions of its key within `gap` of it are merged (see [`SessionFold`]) and
/// replaced by one session that also holds `r`. A record whose merged session
/// ended more than `gap + grace` before `now` (the node's observed time, see
/// [`WindowClock`]) is dropped and counted. Nothing is
/// forwarded here: the caller forwards what left the store's cache.
pub(crate) fn aggregate_session<K: Data, V: Data, VA: Data>(
    windows: &crate::window::SessionWindows,
    store: &SessHandle<K, VA>,
    fold: &SessionFold<K, V, VA>,
    r: Record<K, V>,
    now: i64,
    t: &mut TaskContext,
) -> Result<()> {
    let ts = r.timestamp;
    let close_time = now
        .saturating_sub(windows.grace_ms())
        .saturating_sub(windows.gap_ms());
    let merged = store.find_sessions(&r.key, ts - windows.gap_ms(), ts + windows.gap_ms())?;
    let mut window = Window { start: ts, end: ts };
    let mut agg = fold.init.as_ref().map(|init| init());
    for (w, v) in &merged {
        agg = Some(match agg {
            Some(agg) => (fold.merger)(&r.key, agg, v.clone()),
            None => v.clone(),
        });
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
    let agg = (fold.step)(&r.key, r.value, agg);
    store.put(&Windowed { key: r.key, window }, &agg)
}
