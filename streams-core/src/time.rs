//! Event time: timestamp extractors and the policy for invalid timestamps.
//!
//! Every record carries a timestamp in milliseconds since the Unix epoch. A source's
//! [`TimestampExtractor`] decides it (by default the record's own timestamp); a negative result
//! is invalid and handled by the source's [`InvalidTimestampPolicy`].

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use crate::record::Record;

/// Types that carry their own event time, usually through `#[derive(EventTime)]`.
///
/// ```
/// use streams_core::prelude::*;
///
/// #[derive(Clone, EventTime)]
/// struct Click { user: String, #[event_time] at_ms: i64 }
///
/// assert_eq!(Click { user: "u".into(), at_ms: 5 }.event_time(), 5);
/// ```
pub trait EventTime {
    /// The event time in milliseconds since the Unix epoch.
    fn event_time(&self) -> i64;
}

/// Field types that `#[derive(EventTime)]` accepts: epoch milliseconds (`i64`, `u64`) or a
/// chrono `DateTime<Utc>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an #[event_time] field",
    label = "use epoch milliseconds (i64 or u64) or chrono::DateTime<Utc>"
)]
pub trait IntoEpochMillis {
    /// The time in milliseconds since the Unix epoch.
    fn epoch_millis(&self) -> i64;
}

impl IntoEpochMillis for i64 {
    fn epoch_millis(&self) -> i64 {
        *self
    }
}

impl IntoEpochMillis for u64 {
    fn epoch_millis(&self) -> i64 {
        i64::try_from(*self).unwrap_or(i64::MAX)
    }
}

impl IntoEpochMillis for DateTime<Utc> {
    fn epoch_millis(&self) -> i64 {
        self.timestamp_millis()
    }
}

/// Converts epoch milliseconds to a chrono time (`None` when out of chrono's range).
pub fn to_datetime(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

/// Chooses a record's timestamp. `partition_time` is the largest valid timestamp seen so far
/// on the record's partition (-1 when none).
pub trait TimestampExtractor<K, V>: Send + Sync + 'static {
    /// The record's event time; negative means invalid.
    fn extract(&self, record: &Record<K, V>, partition_time: i64) -> i64;
}

/// The record's own timestamp (the producer's or the log's append time). The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordTimestamp;

impl<K, V> TimestampExtractor<K, V> for RecordTimestamp {
    fn extract(&self, record: &Record<K, V>, _partition_time: i64) -> i64 {
        record.timestamp
    }
}

/// The wall-clock time when the record is read (processing time).
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClockTimestamp;

impl<K, V> TimestampExtractor<K, V> for WallClockTimestamp {
    fn extract(&self, _record: &Record<K, V>, _partition_time: i64) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// The value's own event time, through [`EventTime`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeExtractor;

impl<K, V: EventTime> TimestampExtractor<K, V> for EventTimeExtractor {
    fn extract(&self, record: &Record<K, V>, _partition_time: i64) -> i64 {
        record.value.event_time()
    }
}

/// An extractor from a closure over the record.
pub struct FnExtractor<F>(pub F);

impl<F> fmt::Debug for FnExtractor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnExtractor")
    }
}

impl<K, V, F> TimestampExtractor<K, V> for FnExtractor<F>
where
    F: Fn(&Record<K, V>) -> i64 + Send + Sync + 'static,
{
    fn extract(&self, record: &Record<K, V>, _partition_time: i64) -> i64 {
        (self.0)(record)
    }
}

/// A shared extractor.
pub type ExtractorRef<K, V> = Arc<dyn TimestampExtractor<K, V>>;

/// What a source does with a record whose extracted timestamp is negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidTimestampPolicy {
    /// Stop with [`crate::error::StreamsError::InvalidTimestamp`] (Kafka's default).
    #[default]
    Fail,
    /// Skip the record, log it and count it in the `skipped-records` metric.
    SkipAndCount,
    /// Use the partition's time (the largest valid timestamp seen on the partition); if there
    /// is none yet, skip and count.
    UsePartitionTime,
}
