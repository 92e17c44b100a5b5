//! What the threads of an instance share: its status, task-directory locks, the
//! instance's clients and topology, and starting a thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use streams_state::{RocksDbResources, StateDirectory};

use crate::client::{Admin, ClientError, ClientSupplier, NewTopic};
use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::record::TaskId;
use crate::snapshot::ThreadSnapshot;
use crate::topology::Topology;

use super::*;

/// What a thread reports about itself.
#[derive(Debug, Clone)]
pub(super) struct ThreadStatus {
    pub(super) running: bool,
    /// Running, with every input partition processed to its end and committed.
    pub(super) caught_up: bool,
    /// How many times the thread reported (once per loop).
    pub(super) reports: u64,
    pub(super) snapshot: ThreadSnapshot,
}

#[derive(Default)]
pub(super) struct SharedInner {
    pub(super) state: Option<StreamsState>,
    /// The group's members and assignment, as a thread last saw them (not kept where the
    /// instance announces: `announced` is used instead).
    pub(super) group: Vec<crate::client::GroupMember>,
    /// The members and assignment the threads announced (see `membership`), when the
    /// clients' own group view may be partial.
    pub(super) announced: Vec<crate::client::GroupMember>,
    /// Bumped whenever `announced` changes (the threads re-place their standbys).
    pub(super) announced_version: u64,
    pub(super) threads: BTreeMap<usize, ThreadStatus>,
    pub(super) error: Option<String>,
    pub(super) handles: Vec<JoinHandle<()>>,
}

/// What the instance and its threads share.
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    /// Callers of `wait_until_caught_up`: threads commit as soon as they caught up.
    pub(super) waiters: std::sync::atomic::AtomicUsize,
    pub(super) inner: Mutex<SharedInner>,
    pub(super) listener: Mutex<Option<StateListener>>,
    pub(super) handler: Mutex<Option<UncaughtErrorHandler>>,
}

use crate::sync::lock;

impl Shared {
    pub(super) fn state(&self) -> StreamsState {
        lock(&self.inner).state.unwrap_or(StreamsState::Created)
    }

    /// Moves to `new` (unless the instance is already shutting down or failed) and tells
    /// the listener.
    pub(super) fn transition(&self, new: StreamsState) {
        let old = {
            let mut inner = lock(&self.inner);
            let old = inner.state.unwrap_or(StreamsState::Created);
            let terminal = matches!(old, StreamsState::NotRunning | StreamsState::Error);
            let closing = old == StreamsState::PendingShutdown
                && matches!(new, StreamsState::Rebalancing | StreamsState::Running);
            if old == new || terminal || closing {
                return;
            }
            inner.state = Some(new);
            old
        };
        tracing::info!(?old, ?new, "state change");
        if let Some(l) = lock(&self.listener).as_ref() {
            l(new, old);
        }
    }

    /// A thread reports its status; the instance is Running when every thread is.
    pub(super) fn report(&self, slot: usize, status: ThreadStatus) {
        let all_running = {
            let mut inner = lock(&self.inner);
            inner.threads.insert(slot, status);
            inner.threads.values().all(|t| t.running)
        };
        self.transition(if all_running {
            StreamsState::Running
        } else {
            StreamsState::Rebalancing
        });
    }

    pub(super) fn fail(&self, e: String) {
        lock(&self.inner).error.get_or_insert(e);
    }

    /// One check of `wait_until_caught_up` (shared with its async form in `async_api`):
    /// whether the instance is caught up, with `seen` carried from one check to the next.
    /// Caught up must hold over two more reports of every thread: one thread's output may
    /// still be on its way to another's input when both last reported.
    pub(super) fn caught_up(&self, seen: &mut Option<BTreeMap<usize, u64>>) -> Result<bool> {
        let inner = lock(&self.inner);
        if let Some(e) = &inner.error {
            return Err(StreamsError::Stopped { cause: e.clone() });
        }
        let now_caught_up = inner.state == Some(StreamsState::Running)
            && !inner.threads.is_empty()
            && inner.threads.values().all(|t| t.caught_up);
        let reports: BTreeMap<usize, u64> =
            inner.threads.iter().map(|(k, t)| (*k, t.reports)).collect();
        match seen.as_ref() {
            _ if !now_caught_up => *seen = None,
            None => *seen = Some(reports),
            Some(before) => {
                let stable = reports.len() == before.len()
                    && reports
                        .iter()
                        .all(|(k, n)| before.get(k).is_some_and(|b| *n >= b + 2));
                return Ok(stable);
            }
        }
        Ok(false)
    }
}

/// Task directories in use by this instance's threads: a task moving between threads
/// opens only once the other thread let go of it.
#[derive(Default)]
pub(crate) struct TaskLocks {
    pub(super) held: Mutex<HashSet<TaskId>>,
}

/// A held task directory; released on drop.
pub(crate) struct TaskLock {
    pub(super) locks: Arc<TaskLocks>,
    pub(super) id: TaskId,
}

impl TaskLocks {
    pub(crate) fn try_lock(self: &Arc<Self>, id: TaskId) -> Option<TaskLock> {
        lock(&self.held).insert(id).then(|| TaskLock {
            locks: self.clone(),
            id,
        })
    }
}

impl Drop for TaskLock {
    fn drop(&mut self) {
        lock(&self.locks.held).remove(&self.id);
    }
}

/// Everything an instance's threads share: the topology, settings, clients, the state
/// directory and the topic layout worked out at start.
pub(crate) struct Instance {
    pub(crate) topology: Arc<Topology>,
    pub(crate) config: Arc<StreamsConfig>,
    pub(crate) clients: Arc<dyn ClientSupplier>,
    pub(crate) state_dir: StateDirectory,
    pub(crate) locks: Arc<TaskLocks>,
    pub(crate) resources: RocksDbResources,
    /// Partition counts of every topic the app reads or writes.
    pub(crate) partitions: HashMap<String, u32>,
    /// The sub-topology reading each source topic (external and repartition).
    pub(crate) source_of: HashMap<String, usize>,
    /// Which sub-topologies have logged stores.
    pub(crate) logged: Vec<bool>,
    /// Repartition topics (their records are deleted once committed).
    pub(crate) repartition: HashSet<String>,
    /// Names this instance's clients: `<application.id>-<instance>[-srv-<host>_<port>]`
    /// (the suffix carries `application.server` to the other instances through the group).
    pub(crate) client_prefix: String,
    /// The stores of the running active tasks, for interactive queries.
    pub(crate) queryable: Mutex<BTreeMap<TaskId, Vec<crate::state::StoreEntry>>>,
    /// The global stores (every partition of their topics), shared by every task.
    pub(crate) globals: Option<Arc<crate::internals::global::GlobalStores>>,
    /// The same stores as tasks see them.
    pub(crate) global_entries: Arc<Vec<crate::state::StoreEntry>>,
    /// The topic the threads announce their assignments on (see `membership`): set when
    /// `application.server` or standbys are and the clients' group view may be partial.
    pub(crate) announcements: Option<String>,
    pub(super) shared: Arc<Shared>,
    pub(super) next_thread: AtomicU64,
    /// The event-time floors of the stream threads, which keep them aligned.
    pub(super) clocks: Arc<super::alignment::ThreadClocks>,
}

pub(super) fn no_state_dir() -> crate::config::ConfigError {
    crate::config::ConfigError::Invalid {
        setting: "state.dir",
        detail: "the runtime needs a state directory for its stores and checkpoints".into(),
    }
}

/// The instance part of a member's client id (before `-StreamThread-`).
pub(crate) fn instance_of(client_id: &str) -> String {
    client_id
        .split("-StreamThread-")
        .next()
        .unwrap_or(client_id)
        .to_string()
}

/// The `application.server` an instance name carries, if any.
pub(super) fn host_of(instance: &str) -> Option<crate::query::HostInfo> {
    let (_, server) = instance.rsplit_once("-srv-")?;
    let (host, port) = server.rsplit_once('_')?;
    Some(crate::query::HostInfo {
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

impl Instance {
    /// The sub-topology holding the store `name`.
    pub(super) fn store_subtopology(&self, name: &str) -> Option<usize> {
        let t = &self.topology.inner;
        t.subtopologies
            .iter()
            .position(|s| s.stores.iter().any(|&i| t.stores[i].name == name))
    }

    /// How many partitions (tasks) sub-topology `sub` has: those of its source topics.
    pub(super) fn subtopology_partitions(&self, sub: usize) -> u32 {
        self.source_of
            .iter()
            .filter(|(_, s)| **s == sub)
            .filter_map(|(t, _)| self.partitions.get(t))
            .copied()
            .max()
            .unwrap_or(1)
    }

    /// The input partitions of `tasks`: partition *p* of each source topic of a task's
    /// sub-topology, sorted.
    pub(super) fn topic_partitions_of(
        &self,
        tasks: impl Iterator<Item = TaskId>,
    ) -> Vec<crate::client::TopicPartition> {
        let mut out: Vec<crate::client::TopicPartition> = Vec::new();
        for id in tasks {
            for (topic, sub) in &self.source_of {
                if *sub == id.subtopology as usize {
                    out.push(crate::client::TopicPartition::new(
                        topic.as_str(),
                        id.partition,
                    ));
                }
            }
        }
        out.sort_by(|a, b| (&*a.topic, a.partition).cmp(&(&*b.topic, b.partition)));
        out.dedup();
        out
    }

    /// The stores of sub-topology `sub`.
    pub(super) fn store_names(&self, sub: usize) -> Vec<String> {
        let t = &self.topology.inner;
        t.subtopologies
            .get(sub)
            .map(|s| s.stores.iter().map(|&i| t.stores[i].name.clone()).collect())
            .unwrap_or_default()
    }

    /// Makes the stores of a running task queryable, or not.
    pub(crate) fn set_queryable(&self, id: TaskId, stores: Option<Vec<crate::state::StoreEntry>>) {
        let mut q = lock(&self.queryable);
        match stores {
            Some(s) => {
                q.insert(id, s);
            }
            None => {
                q.remove(&id);
            }
        }
    }

    /// Records the group's members and assignment after a rebalance.
    pub(crate) fn set_group(&self, members: Vec<crate::client::GroupMember>) {
        lock(&self.shared.inner).group = members;
    }
}

/// Creates `topic` unless it exists with the same partition count; another instance may
/// create it at the same time.
pub(super) fn ensure_topic(
    admin: &dyn Admin,
    existing: &BTreeMap<String, u32>,
    topic: &NewTopic,
) -> Result<()> {
    let mismatch = |n: u32| StreamsError::Topic {
        topic: topic.name.clone(),
        detail: format!(
            "internal topic has {n} partitions, the topology needs {}; reset the application",
            topic.partitions
        ),
    };
    match existing.get(&topic.name) {
        Some(&n) if n == topic.partitions => Ok(()),
        Some(&n) => Err(mismatch(n)),
        None => match admin.create_topic(topic) {
            Ok(()) => Ok(()),
            Err(ClientError::TopicExists(_)) => match admin.topics()?.get(&topic.name) {
                Some(&n) if n != topic.partitions => Err(mismatch(n)),
                _ => Ok(()),
            },
            Err(e) => Err(e.into()),
        },
    }
}

pub(super) fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
