//! Windowed keys: a record key together with the time window it belongs to.

use std::fmt;

/// A time window `[start, end)` for time windows, or `[start, end]` (both inclusive) for
/// sessions and sliding windows. Times are ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The window's start.
    pub start: i64,
    /// The window's end.
    pub end: i64,
}

/// A key and its window: the key type of windowed tables. Displays as `[key@start/end]`,
/// like Kafka Streams' `Windowed`.
///
/// ```
/// use streams_core::window::{Window, Windowed};
/// let w = Windowed { key: "page-1", window: Window { start: 0, end: 60_000 } };
/// assert_eq!(w.to_string(), "[page-1@0/60000]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K: fmt::Display> fmt::Display for Windowed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}@{}/{}]",
            self.key, self.window.start, self.window.end
        )
    }
}

use std::sync::Arc;
use std::time::Duration;

use crate::serde::{DefaultSerde, Serde, SerdeError, SerdeRef};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Tumbling or hopping time windows: `[start, start + size)`, aligned to the epoch, with an
/// explicit grace period for late records (Kafka Streams' `TimeWindows`).
///
/// ```
/// use std::time::Duration;
/// use streams_core::window::TimeWindows;
/// // 5-minute windows every minute, records up to 10 s late still count.
/// let w = TimeWindows::of_size_and_grace(Duration::from_secs(300), Duration::from_secs(10))
///     .advance_by(Duration::from_secs(60));
/// // A record at 6:30 belongs to the windows starting at 2:00, 3:00, ..., 6:00.
/// let starts: Vec<i64> = w.window_starts(390_000).collect();
/// assert_eq!(starts, vec![120_000, 180_000, 240_000, 300_000, 360_000]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size: i64,
    advance: i64,
    grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` that close as soon as stream time passes their end.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that accept records up to `grace` after their end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size = millis(size);
        Self {
            size,
            advance: size,
            grace: millis(grace),
        }
    }

    /// Hopping windows: a new window starts every `advance` (which must be in
    /// `(0, size]`; checked when the topology is built).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance = millis(advance);
        self
    }

    /// The window size in ms.
    pub fn size_ms(&self) -> i64 {
        self.size
    }

    /// The advance in ms (equal to the size for tumbling windows).
    pub fn advance_ms(&self) -> i64 {
        self.advance
    }

    /// The grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    /// What is wrong with these windows, if anything.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.size <= 0 {
            Some("the window size must be positive".into())
        } else if self.advance <= 0 || self.advance > self.size {
            Some(format!(
                "the advance ({} ms) must be positive and at most the size ({} ms)",
                self.advance, self.size
            ))
        } else {
            None
        }
    }

    /// The starts of every window that contains `timestamp`: those in
    /// `(timestamp - size, timestamp]`, aligned to the advance, and not negative.
    pub fn window_starts(&self, timestamp: i64) -> impl Iterator<Item = i64> + use<> {
        let (size, advance) = (self.size.max(1), self.advance.max(1));
        let first = ((timestamp - size + advance).max(0) / advance) * advance;
        (0..)
            .map(move |i| first + i * advance)
            .take_while(move |s| *s <= timestamp && timestamp >= 0)
    }
}

/// Kafka's windowed-key layout for time windows: the key's bytes, then the 8-byte
/// big-endian window start. The end is the start plus the window size when the size is
/// known, else `i64::MAX` (as Kafka's deserializer does without a window size).
pub struct TimeWindowedSerde<K> {
    inner: SerdeRef<K>,
    size: Option<i64>,
}

impl<K> TimeWindowedSerde<K> {
    /// Windowed keys of windows of `size_ms` (`None`: unknown size).
    pub fn new(inner: SerdeRef<K>, size_ms: Option<i64>) -> Self {
        Self {
            inner,
            size: size_ms,
        }
    }
}

impl<K> fmt::Debug for TimeWindowedSerde<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindowedSerde")
            .field("size", &self.size)
            .finish()
    }
}

impl<K: 'static> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize_into(&self, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.inner.serialize_into(&value.key, out)?;
        out.extend_from_slice(&value.window.start.to_be_bytes());
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if bytes.len() < 8 {
            return Err(SerdeError::WrongSize {
                type_name: "Windowed",
                expected: 8,
                actual: bytes.len(),
            });
        }
        let (key, start) = bytes.split_at(bytes.len() - 8);
        let mut arr = [0u8; 8];
        arr.copy_from_slice(start);
        let start = i64::from_be_bytes(arr);
        Ok(Windowed {
            key: self.inner.deserialize(key)?,
            window: Window {
                start,
                end: self.size.map_or(i64::MAX, |s| start.saturating_add(s)),
            },
        })
    }
}

impl<K: DefaultSerde> DefaultSerde for Windowed<K> {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(TimeWindowedSerde::new(K::default_serde(), None))
    }
}

/// Sliding windows for aggregations (Kafka Streams' `SlidingWindows`): windows of a fixed
/// time difference `d` with both ends inclusive, `[start, start + d]`, that exist only where
/// records are. A record at `t` creates its *left* window `[t - d, t]` and, when later
/// records fall within `d` of it, its *right* window `[t + 1, t + 1 + d]`; every distinct,
/// non-empty set of records that fit within `d` of each other gets exactly one window.
///
/// ```
/// use std::time::Duration;
/// use streams_core::window::SlidingWindows;
/// let w = SlidingWindows::of_time_difference_and_grace(
///     Duration::from_secs(5),
///     Duration::from_secs(30),
/// );
/// assert_eq!((w.time_difference_ms(), w.grace_ms()), (5_000, 30_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    difference: i64,
    grace: i64,
}

impl SlidingWindows {
    /// Sliding windows of time difference `difference`, closing as soon as stream time
    /// passes their end.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Sliding windows of time difference `difference` that accept records up to `grace`
    /// after a window's end.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        Self {
            difference: millis(difference),
            grace: millis(grace),
        }
    }

    /// The maximum time difference between two records of one window, in ms (a window
    /// spans `[start, start + time_difference_ms]`).
    pub fn time_difference_ms(&self) -> i64 {
        self.difference
    }

    /// The grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }
}

/// Session windows: a session of a key grows while its records are at most `gap` apart
/// (both ends inclusive: a record exactly `gap` after the last one still joins), with an
/// explicit grace period (Kafka Streams' `SessionWindows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    gap: i64,
    grace: i64,
}

impl SessionWindows {
    /// Sessions closed by an inactivity `gap`, with no grace for late records.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions closed by an inactivity `gap`, accepting records up to `grace` late.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        Self {
            gap: millis(gap),
            grace: millis(grace),
        }
    }

    /// The inactivity gap in ms.
    pub fn gap_ms(&self) -> i64 {
        self.gap
    }

    /// The grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    pub(crate) fn problem(&self) -> Option<String> {
        (self.gap <= 0).then(|| "the inactivity gap must be positive".to_string())
    }
}

/// Kafka's windowed-key layout for sessions: the key's bytes, then the 8-byte big-endian
/// end, then the 8-byte big-endian start.
pub struct SessionWindowedSerde<K> {
    inner: SerdeRef<K>,
}

impl<K> SessionWindowedSerde<K> {
    /// Session-windowed keys over the key serde `inner`.
    pub fn new(inner: SerdeRef<K>) -> Self {
        Self { inner }
    }
}

impl<K> fmt::Debug for SessionWindowedSerde<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionWindowedSerde")
    }
}

impl<K: 'static> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize_into(&self, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.inner.serialize_into(&value.key, out)?;
        out.extend_from_slice(&value.window.end.to_be_bytes());
        out.extend_from_slice(&value.window.start.to_be_bytes());
        Ok(())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if bytes.len() < 16 {
            return Err(SerdeError::WrongSize {
                type_name: "session Windowed",
                expected: 16,
                actual: bytes.len(),
            });
        }
        let (key, times) = bytes.split_at(bytes.len() - 16);
        let mut end = [0u8; 8];
        let mut start = [0u8; 8];
        end.copy_from_slice(&times[..8]);
        start.copy_from_slice(&times[8..]);
        Ok(Windowed {
            key: self.inner.deserialize(key)?,
            window: Window {
                start: i64::from_be_bytes(start),
                end: i64::from_be_bytes(end),
            },
        })
    }
}

/// The time bounds of a stream-stream join (Kafka Streams' `JoinWindows`): a record at `t`
/// joins the other side's records with timestamps in `[t - before, t + after]`, both ends
/// inclusive (a record of the other side mirrors it: `[t' - after, t' + before]`). Both
/// sides are buffered for `before + after + grace` of stream time; a left or outer join
/// emits an unmatched record with no partner once stream time passes `t + after + grace`
/// (`t + before + grace` for the right side).
///
/// ```
/// use std::time::Duration;
/// use streams_core::window::JoinWindows;
/// // Clicks within 30 minutes after the view, late records accepted for 1 minute.
/// let w = JoinWindows::of_time_difference_and_grace(Duration::from_secs(1800), Duration::from_secs(60))
///     .before(Duration::ZERO);
/// assert_eq!((w.before_ms(), w.after_ms(), w.grace_ms(), w.size_ms()), (0, 1_800_000, 60_000, 1_800_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    before: i64,
    after: i64,
    grace: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join (symmetric), and records up to `grace` late
    /// are still joined and buffered.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        let d = millis(difference);
        Self {
            before: d,
            after: d,
            grace: millis(grace),
        }
    }

    /// Records at most `difference` apart join; no grace for late records.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// How far before a left record a right record may be (keeps `after`).
    pub fn before(self, difference: Duration) -> Self {
        self.with_before_ms(millis(difference))
    }

    /// How far after a left record a right record may be (keeps `before`).
    pub fn after(self, difference: Duration) -> Self {
        self.with_after_ms(millis(difference))
    }

    /// [`before`](Self::before) in signed ms: a negative value shifts the window after the
    /// left record (Kafka allows this as long as `before + after >= 0`; checked when the
    /// topology is built).
    pub fn with_before_ms(mut self, ms: i64) -> Self {
        self.before = ms;
        self
    }

    /// [`after`](Self::after) in signed ms (see [`with_before_ms`](Self::with_before_ms)).
    pub fn with_after_ms(mut self, ms: i64) -> Self {
        self.after = ms;
        self
    }

    /// How far before a left record its partners may be, in ms.
    pub fn before_ms(&self) -> i64 {
        self.before
    }

    /// How far after a left record its partners may be, in ms.
    pub fn after_ms(&self) -> i64 {
        self.after
    }

    /// The grace period in ms.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    /// The window's size, `before + after`, in ms.
    pub fn size_ms(&self) -> i64 {
        self.before.saturating_add(self.after)
    }

    /// How long each side's records are kept: `before + after + grace`, in ms.
    pub fn retention_ms(&self) -> i64 {
        self.size_ms().saturating_add(self.grace)
    }

    pub(crate) fn problem(&self) -> Option<String> {
        if self.size_ms() < 0 {
            Some(format!(
                "the join window (before {} ms + after {} ms) must not be negative",
                self.before, self.after
            ))
        } else if self.grace < 0 {
            Some("the grace period must not be negative".into())
        } else {
            None
        }
    }
}
