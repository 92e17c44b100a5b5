//! Interactive queries: read-only views of a store across the tasks that hold its
//! partitions, and where a key lives when an app runs as several instances.
//!
//! The same views serve the [test driver](crate::testing::TopologyTestDriver) and a
//! running [`KafkaStreams`](crate::runtime::KafkaStreams) instance (its running active
//! tasks; standbys are not queried). Reads go through the record cache, so they see every
//! update processed so far, as Kafka Streams' interactive queries do.
//!
//! # Which partitions an answer covers
//!
//! A store is split into partitions, one per task (Kafka Streams' IQv2 answers per
//! partition, `StateQueryResult`). Each view says which partitions it covers
//! ([`KeyValueStoreView::partitions`] and the same on the other views): those of the tasks
//! that run here and have restored their state. A task that is restoring, waiting for its
//! state directory or moving to another instance is not in any view (Kafka Streams'
//! `InvalidStateStoreException` for a migrating store): an answer built from views is
//! complete only when the partitions its parts cover add up to every partition of the store
//! ([`StorePartitions::partitions`], [`Coverage`]). [`KeyQueryMetadata::partition`] names
//! the one partition a key's answer needs.

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
    /// and a live member of the group holds the task as of the latest rebalance known
    /// here. `None` while the task moves (its old owner left or died and its new owner has
    /// not announced it yet) or when the owner has no `application.server`: the caller
    /// should retry, never ask the member that held it before.
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

/// Where the partitions (tasks) of one store stand on this instance
/// ([`KafkaStreams::store_partitions`](crate::runtime::KafkaStreams::store_partitions)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePartitions {
    /// The store.
    pub store: String,
    /// How many partitions the store has in all (one task each), over every instance.
    pub partitions: u32,
    /// Partitions whose active task runs here with its state restored: the views of this
    /// instance cover them.
    pub running: Vec<u32>,
    /// Partitions assigned here whose task is not queryable yet: restoring its state from
    /// the changelog, or waiting for its state directory.
    pub restoring: Vec<u32>,
    /// Partitions this instance keeps a standby replica of (never queried).
    pub standby: Vec<u32>,
}

impl StorePartitions {
    /// Every partition of the store, `0..partitions`.
    pub fn all(&self) -> std::ops::Range<u32> {
        0..self.partitions
    }
}

/// The partitions of a store that the parts of a merged answer cover, checked against all
/// of them: an answer is complete only when every partition is covered exactly once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// How many partitions the store has.
    partitions: u32,
    /// Partition -> how many parts covered it.
    seen: std::collections::BTreeMap<u32, u32>,
}

impl Coverage {
    /// Nothing covered yet of a store with `partitions` partitions.
    pub fn new(partitions: u32) -> Self {
        Self {
            partitions,
            seen: std::collections::BTreeMap::new(),
        }
    }

    /// Adds the partitions one part covers (a view's [`partitions`](KeyValueStoreView::partitions),
    /// or what another instance reported of its views).
    pub fn add(&mut self, partitions: &[u32]) {
        for p in partitions {
            *self.seen.entry(*p).or_default() += 1;
        }
    }

    /// The partitions of the store no part covered, ascending.
    pub fn missing(&self) -> Vec<u32> {
        (0..self.partitions)
            .filter(|p| !self.seen.contains_key(p))
            .collect()
    }

    /// The partitions more than one part covered (two instances answered for one task,
    /// which happens only while a rebalance moves it), ascending.
    pub fn duplicated(&self) -> Vec<u32> {
        self.seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Partitions reported that the store does not have (a part from an instance that
    /// runs another layout of the app), ascending.
    pub fn unknown(&self) -> Vec<u32> {
        self.seen
            .keys()
            .filter(|p| **p >= self.partitions)
            .copied()
            .collect()
    }

    /// Every partition covered exactly once, and nothing else.
    pub fn is_complete(&self) -> bool {
        self.missing().is_empty() && self.duplicated().is_empty() && self.unknown().is_empty()
    }
}

/// The partitions of the parts of a view: sorted, each once.
fn partition_list(mut partitions: Vec<u32>) -> Vec<u32> {
    partitions.sort_unstable();
    partitions.dedup();
    partitions
}

enum Part<K, V> {
    Plain(KeyValueStoreHandle<K, V>),
    Timestamped(KeyValueStoreHandle<K, ValueAndTimestamp<V>>),
}

/// A read view of one key-value store across tasks (of a test driver, or the running tasks
/// of an app instance).
pub struct KeyValueStoreView<K, V> {
    parts: Vec<Part<K, V>>,
    partitions: Vec<u32>,
}

impl<K, V> std::fmt::Debug for KeyValueStoreView<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueStoreView")
            .field("tasks", &self.parts.len())
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl<K, V> KeyValueStoreView<K, V> {
    /// The partitions of the store this view covers, ascending: those of the tasks it
    /// reads (running, restored). A view of a global store covers every partition of its
    /// topic. Views of the [test driver](crate::testing::TopologyTestDriver) do not track
    /// partitions: theirs is empty.
    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// Whether the view covers `partition` (say, a key's
    /// [`KeyQueryMetadata::partition`]): its answers for the keys of that partition are
    /// complete.
    pub fn covers(&self, partition: u32) -> bool {
        self.partitions.binary_search(&partition).is_ok()
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
    partitions: Vec<u32>,
}

impl<K, V> std::fmt::Debug for WindowStoreView<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStoreView")
            .field("tasks", &self.parts.len())
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl<K, V> WindowStoreView<K, V> {
    /// The partitions of the store this view covers, ascending (see
    /// [`KeyValueStoreView::partitions`]).
    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// Whether the view covers `partition` (see [`KeyValueStoreView::covers`]).
    pub fn covers(&self, partition: u32) -> bool {
        self.partitions.binary_search(&partition).is_ok()
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
    partitions: Vec<u32>,
}

impl<K, V> std::fmt::Debug for SessionStoreView<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStoreView")
            .field("tasks", &self.parts.len())
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl<K, V> SessionStoreView<K, V> {
    /// The partitions of the store this view covers, ascending (see
    /// [`KeyValueStoreView::partitions`]).
    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// Whether the view covers `partition` (see [`KeyValueStoreView::covers`]).
    pub fn covers(&self, partition: u32) -> bool {
        self.partitions.binary_search(&partition).is_ok()
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
        Ok(Self {
            parts,
            partitions: Vec::new(),
        })
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
        Ok(Self {
            parts,
            partitions: Vec::new(),
        })
    }
}

impl<K: 'static, V: 'static> SessionStoreView<K, V> {
    pub(crate) fn from_entries(name: &str, entries: &[StoreEntry]) -> Result<Self> {
        if entries.is_empty() {
            return Err(missing(name, "session"));
        }
        Ok(Self {
            parts: handles::<SessionStoreHandle<K, V>>(entries)?,
            partitions: Vec::new(),
        })
    }
}

/// A view made of one store of each of several tasks.
pub(crate) trait TaskStoresView: Sized {
    /// A view over the store `name` of each task in `entries`, covering `partitions`
    /// (those of the tasks it is made of).
    fn over(name: &str, entries: &[StoreEntry], partitions: Vec<u32>) -> Result<Self>;
}

macro_rules! covering {
    ($view:ident) => {
        impl<K, V> $view<K, V> {
            /// The same view, covering `partitions` (those of the tasks it was made of).
            pub(crate) fn covering(mut self, partitions: Vec<u32>) -> Self {
                self.partitions = partition_list(partitions);
                self
            }
        }

        impl<K: 'static, V: 'static> TaskStoresView for $view<K, V> {
            fn over(name: &str, entries: &[StoreEntry], partitions: Vec<u32>) -> Result<Self> {
                Ok(Self::from_entries(name, entries)?.covering(partitions))
            }
        }
    };
}
covering!(KeyValueStoreView);
covering!(WindowStoreView);
covering!(SessionStoreView);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_is_complete_when_every_partition_is_covered_once() {
        let mut c = Coverage::new(4);
        assert_eq!(c.missing(), vec![0, 1, 2, 3]);
        assert!(!c.is_complete());
        c.add(&[0, 2]);
        c.add(&[3]);
        assert_eq!(c.missing(), vec![1]);
        assert!(!c.is_complete());
        c.add(&[1]);
        assert!(c.is_complete(), "{c:?}");
        // A partition answered by two instances (a rebalance under way) is counted twice.
        c.add(&[2]);
        assert_eq!(c.duplicated(), vec![2]);
        assert!(!c.is_complete());
        let mut d = Coverage::new(2);
        d.add(&[0, 1, 5]);
        assert_eq!(d.unknown(), vec![5]);
        assert!(!d.is_complete());
        // A store without partitions is complete with nothing.
        assert!(Coverage::new(0).is_complete());
    }

    #[test]
    fn views_list_their_partitions_sorted_once() {
        let v = KeyValueStoreView::<String, i64> {
            parts: Vec::new(),
            partitions: Vec::new(),
        }
        .covering(vec![3, 1, 3, 0]);
        assert_eq!(v.partitions(), &[0, 1, 3]);
        assert!(v.covers(1) && v.covers(3));
        assert!(!v.covers(2));
        let w = WindowStoreView::<String, i64> {
            parts: Vec::new(),
            partitions: Vec::new(),
        }
        .covering(vec![2]);
        assert_eq!(w.partitions(), &[2]);
        assert!(!w.covers(0));
    }
}
