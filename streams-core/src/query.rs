//! Interactive queries: read-only views of a store across the tasks that hold its
//! partitions, and where a key lives when an app runs as several instances.
//!
//! The same views serve the [test driver](crate::testing::TopologyTestDriver) and a
//! running [`KafkaStreams`](crate::runtime::KafkaStreams) instance (its running active
//! tasks; standbys are not queried). Reads go through the record cache, so they see every
//! update processed so far, as Kafka Streams' interactive queries do.

use crate::error::{Result, StreamsError};
use crate::state::{
    KeyValueStoreHandle, ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore,
    SessionStoreHandle, StoreEntry, ValueAndTimestamp, WindowStoreHandle,
};
use crate::window::Windowed;

/// An app instance's address for interactive queries (`application.server`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostInfo {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostInfo {
    /// Parses `host:port`.
    pub fn parse(s: &str) -> Option<Self> {
        let (host, port) = s.rsplit_once(':')?;
        Some(Self {
            host: host.to_string(),
            port: port.parse().ok()?,
        })
    }
}

impl std::fmt::Display for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Where a key of a store lives (Kafka Streams' `KeyQueryMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The instance running the task that holds the key, if it set `application.server`
    /// and the group's assignment is known.
    pub active_host: Option<HostInfo>,
    /// Instances with a standby replica of that task.
    pub standby_hosts: Vec<HostInfo>,
    /// The partition (and task) of the key.
    pub partition: u32,
}

/// An instance of the app and what it runs (Kafka Streams' `StreamsMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsMetadata {
    /// Its `application.server`, if set.
    pub host: Option<HostInfo>,
    /// Its consumers' client-id prefix (names the instance).
    pub instance: String,
    /// The stores of the tasks it runs.
    pub state_stores: Vec<String>,
    /// The input partitions assigned to it.
    pub topic_partitions: Vec<crate::client::TopicPartition>,
}

enum Part<K, V> {
    Plain(KeyValueStoreHandle<K, V>),
    Timestamped(KeyValueStoreHandle<K, ValueAndTimestamp<V>>),
}

/// A read view of one key-value store across tasks (of a test driver, or the running tasks
/// of an app instance).
pub struct KeyValueStoreView<K, V> {
    parts: Vec<Part<K, V>>,
}

impl<K, V> std::fmt::Debug for KeyValueStoreView<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueStoreView")
            .field("tasks", &self.parts.len())
            .finish()
    }
}

impl<K: 'static, V: 'static> KeyValueStoreView<K, V> {
    /// The value of `key` in whichever task holds it.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        for p in &self.parts {
            let v = match p {
                Part::Plain(h) => h.get(key)?,
                Part::Timestamped(h) => h.get(key)?.map(|v| v.value),
            };
            if v.is_some() {
                return Ok(v);
            }
        }
        Ok(None)
    }

    /// Every pair of every task (ascending by serialized key within a task).
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Plain(h) => out.extend(h.all()?),
                Part::Timestamped(h) => out.extend(h.all()?.into_iter().map(|(k, v)| (k, v.value))),
            }
        }
        Ok(out)
    }

    /// The number of keys over all tasks.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        let mut n = 0;
        for p in &self.parts {
            n += match p {
                Part::Plain(h) => h.approximate_num_entries()?,
                Part::Timestamped(h) => h.approximate_num_entries()?,
            };
        }
        Ok(n)
    }
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> for KeyValueStoreView<K, V> {
    fn get(&self, key: &K) -> Result<Option<V>> {
        KeyValueStoreView::get(self, key)
    }
    fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Plain(h) => out.extend(h.range(from, to)?),
                Part::Timestamped(h) => {
                    out.extend(h.range(from, to)?.into_iter().map(|(k, v)| (k, v.value)))
                }
            }
        }
        Ok(out)
    }
    fn all(&self) -> Result<Vec<(K, V)>> {
        KeyValueStoreView::all(self)
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        KeyValueStoreView::approximate_num_entries(self)
    }
}

enum WinPart<K, V> {
    Plain(WindowStoreHandle<K, V>),
    Timestamped(WindowStoreHandle<K, ValueAndTimestamp<V>>),
}

impl<K: 'static, V: 'static> WinPart<K, V> {
    fn fetch(&self, key: &K, start: i64) -> Result<Option<V>> {
        Ok(match self {
            WinPart::Plain(h) => h.fetch(key, start)?,
            WinPart::Timestamped(h) => h.fetch(key, start)?.map(|v| v.value),
        })
    }
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        Ok(match self {
            WinPart::Plain(h) => h.fetch_range(key, from, to)?,
            WinPart::Timestamped(h) => h
                .fetch_range(key, from, to)?
                .into_iter()
                .map(|(s, v)| (s, v.value))
                .collect(),
        })
    }
    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        Ok(match self {
            WinPart::Plain(h) => h.fetch_all(from, to)?,
            WinPart::Timestamped(h) => h
                .fetch_all(from, to)?
                .into_iter()
                .map(|(w, v)| (w, v.value))
                .collect(),
        })
    }
}

/// A read view of one window store across tasks (of a test driver, or the running tasks of
/// an app instance).
pub struct WindowStoreView<K, V> {
    parts: Vec<WinPart<K, V>>,
}

impl<K, V> std::fmt::Debug for WindowStoreView<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStoreView")
            .field("tasks", &self.parts.len())
            .finish()
    }
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> for WindowStoreView<K, V> {
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        for h in &self.parts {
            if let Some(v) = h.fetch(key, window_start)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let mut out = Vec::new();
        for h in &self.parts {
            out.extend(h.fetch_range(key, from, to)?);
        }
        out.sort_by_key(|(start, _)| *start);
        Ok(out)
    }
    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for h in &self.parts {
            out.extend(h.fetch_all(from, to)?);
        }
        Ok(out)
    }
}

/// A read view of one session store across tasks (of a test driver, or the running tasks of
/// an app instance).
pub struct SessionStoreView<K, V> {
    parts: Vec<SessionStoreHandle<K, V>>,
}

impl<K, V> std::fmt::Debug for SessionStoreView<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStoreView")
            .field("tasks", &self.parts.len())
            .finish()
    }
}

impl<K: 'static, V: 'static> ReadOnlySessionStore<K, V> for SessionStoreView<K, V> {
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for h in &self.parts {
            out.extend(h.fetch(key)?);
        }
        Ok(out)
    }
    fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for h in &self.parts {
            out.extend(h.find_sessions(key, earliest_end, latest_start)?);
        }
        Ok(out)
    }
}

/// The typed handles of `entries` (one per task).
fn handles<H: Clone + 'static>(entries: &[StoreEntry]) -> Result<Vec<H>> {
    entries.iter().map(StoreEntry::typed::<H>).collect()
}

fn missing(name: &str, kind: &str) -> StreamsError {
    StreamsError::StoreAccess {
        store: name.to_string(),
        detail: format!("no such {kind} store among the running tasks"),
    }
}

impl<K: 'static, V: 'static> KeyValueStoreView<K, V> {
    /// A view over the store `name` of each task in `entries`. DSL stores keep a timestamp
    /// with each value; the view reads either kind.
    pub(crate) fn from_entries(name: &str, entries: &[StoreEntry]) -> Result<Self> {
        if entries.is_empty() {
            return Err(missing(name, "key-value"));
        }
        let mut parts = Vec::new();
        for entry in entries {
            let any = entry.typed_any();
            if let Some(h) = any.downcast_ref::<KeyValueStoreHandle<K, V>>() {
                parts.push(Part::Plain(h.clone()));
            } else if let Some(h) =
                any.downcast_ref::<KeyValueStoreHandle<K, ValueAndTimestamp<V>>>()
            {
                parts.push(Part::Timestamped(h.clone()));
            } else {
                return Err(StreamsError::StoreAccess {
                    store: name.to_string(),
                    detail: format!(
                        "holds other types than ({}, {})",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>()
                    ),
                });
            }
        }
        Ok(Self { parts })
    }
}

impl<K: 'static, V: 'static> WindowStoreView<K, V> {
    pub(crate) fn from_entries(name: &str, entries: &[StoreEntry]) -> Result<Self> {
        if entries.is_empty() {
            return Err(missing(name, "window"));
        }
        let parts = match handles::<WindowStoreHandle<K, V>>(entries) {
            Ok(h) => h.into_iter().map(WinPart::Plain).collect(),
            Err(_) => handles::<WindowStoreHandle<K, ValueAndTimestamp<V>>>(entries)?
                .into_iter()
                .map(WinPart::Timestamped)
                .collect(),
        };
        Ok(Self { parts })
    }
}

impl<K: 'static, V: 'static> SessionStoreView<K, V> {
    pub(crate) fn from_entries(name: &str, entries: &[StoreEntry]) -> Result<Self> {
        if entries.is_empty() {
            return Err(missing(name, "session"));
        }
        Ok(Self {
            parts: handles::<SessionStoreHandle<K, V>>(entries)?,
        })
    }
}
