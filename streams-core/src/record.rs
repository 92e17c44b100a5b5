//! Records and their metadata.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

/// One record header: a key and an optional (Kafka null-able) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's key.
    pub key: String,
    /// The header's value; `None` is Kafka's null.
    pub value: Option<Vec<u8>>,
}

/// A record's headers, in order. Keys may repeat, as in Kafka. Empty headers do not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Self(Vec::new())
    }
    /// Appends a header.
    pub fn add(&mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> &mut Self {
        self.0.push(Header {
            key: key.into(),
            value,
        });
        self
    }
    /// The value of the last header with `key`.
    pub fn last(&self, key: &str) -> Option<&Header> {
        self.0.iter().rev().find(|h| h.key == key)
    }
    /// Removes every header with `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|h| h.key != key);
    }
    /// Iterates over the headers in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }
    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A typed record flowing through a topology: key, value, timestamp and headers.
///
/// ```
/// use streams_core::record::Record;
/// let r = Record::new("user-1".to_string(), 3i64, 1_700_000_000_000);
/// assert_eq!(r.datetime().unwrap().to_rfc3339(), "2023-11-14T22:13:20+00:00");
/// let r = r.with_value(4i64);
/// assert_eq!((r.key.as_str(), r.value), ("user-1", 4));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Self {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }
    /// A record at a chrono time.
    pub fn at(key: K, value: V, time: DateTime<Utc>) -> Self {
        Self::new(key, value, time.timestamp_millis())
    }
    /// The timestamp as a chrono time (`None` when out of chrono's range).
    pub fn datetime(&self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(self.timestamp).single()
    }
    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with its value transformed by `f`.
    pub fn map_value<V2>(self, f: impl FnOnce(V) -> V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value: f(self.value),
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
    /// The same record with other headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

/// Where the record being processed came from. Absent for records created by punctuators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The source topic.
    pub topic: std::sync::Arc<str>,
    /// The source partition.
    pub partition: u32,
    /// The record's offset in the partition.
    pub offset: i64,
}

/// A task's id: `<sub-topology>_<partition>`, as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology.
    pub subtopology: u32,
    /// The partition.
    pub partition: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// A table update as it flows between table operators: the new value and the old one
/// (`None` on either side means absent; a `new` of `None` is a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value after the update.
    pub new: Option<V>,
    /// The value before the update.
    pub old: Option<V>,
}

impl<V> Change<V> {
    /// A change from `old` to `new`.
    pub fn new(new: Option<V>, old: Option<V>) -> Self {
        Self { new, old }
    }
}

/// A raw record as read from a topic: bytes, not yet deserialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Offset in its partition.
    pub offset: i64,
    /// Timestamp (ms since epoch).
    pub timestamp: i64,
    /// Key bytes; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is null.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Headers,
}

/// What a topic extractor knows of the record being routed besides its key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordContext {
    /// Where the input record came from (`None` inside a punctuator).
    pub metadata: Option<RecordMetadata>,
    /// The record's timestamp.
    pub timestamp: i64,
}
